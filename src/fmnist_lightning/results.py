"""The results table, regenerated from finished runs: test accuracy mean ± std over seeds.

    python -m fmnist_lightning.results lightning_logs/sweeps/<sweep> [more run or sweep folders]
        [--output results.md] [--readme README.md] [--plot accuracy_time.png]
    python -m fmnist_lightning.results --validation lightning_logs/sweeps/<sweep> [...]
        [--output selection.md]

Every folder below the given ones that holds a finished run (``test_metrics.json``) is
one row of data. Runs are grouped by what they trained: the config Hydra composed
(``.hydra/config.yaml``, before interpolation) minus the seed and paths. A row is
labelled by the shortest command line among its runs (Hydra's ``.hydra/overrides.yaml``
minus the seed and paths), so the three jobs of
``-m experiment=best seed=0,1,2`` form one row ``experiment=best``, joined by any run
whose longer command line composed the same config. Runs started from Python, without
Hydra's record, are labelled by their network instead.
An override whose value is a path is shown as ``key=<checkpoint>`` (or ``<path>``), so the
table and its commands hold nothing of this machine.

A folder whose files cannot be read is reported in one line and left out; resume
bookkeeping (``.hydra/``) and sweep or search summary folders are not runs.
``--readme`` replaces what stands between ``<!-- results:start -->`` and
``<!-- results:end -->`` in that file with the table. The table and the README are written
whole or not at all (a full disk keeps the earlier file); an ``--output`` that is the README or
one of the records it reads (config.yaml, metrics.csv, test_metrics.json, ensemble_metrics.json) is refused. ``--plot`` draws validation accuracy
against wall-clock seconds (``elapsed_seconds`` of metrics.csv), one line per configuration.

``--validation`` writes the table recipe choices are made on instead: best validation
accuracy (and with TTA) per configuration, ranked, from ``metrics.csv`` alone; it reads no
test figure (analysis/selection.py), and it reads runs that are still going.

Ensembles evaluated on the test set (``python -m fmnist_lightning.ensemble ... split=test``,
its ensemble_metrics.json) under the folders get a second table (analysis/ensembles.py).

It needs pandas, OmegaConf and matplotlib only: this command imports no torch.
"""

import argparse
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pandas as pd

from fmnist_lightning.analysis import run_files
from fmnist_lightning.analysis.ensembles import Ensemble, ensembles_frame, find_ensembles
from fmnist_lightning.analysis.finished_runs import (
    HEADLINE_ACCURACY,
    NOT_REACHED,
    Run,
    find_runs,
    portable,
)
from fmnist_lightning.analysis.selection import find_validation_runs, selection_markdown
from fmnist_lightning.analysis.tables import markdown_table, mean_and_spread
from fmnist_lightning.inference.output_files import (
    OutputFileError,
    check_not_an_input,
    write_atomically,
)

__all__ = ["find_runs", "main", "portable", "replace_between_markers", "results_markdown"]

README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


def time_cell(group: list[Run]) -> str:
    """Mean seconds to HEADLINE_ACCURACY; "—" with a count when some seed never got there."""
    if not all(run.timed for run in group):
        return "?"  # a run written before time to accuracy was recorded
    missed = sum(run.time_to_headline is None for run in group)
    if missed:
        return f"{NOT_REACHED} ({missed} of {len(group)} not reached)"
    seconds = pd.Series([run.time_to_headline for run in group], dtype=float)
    return f"{seconds.mean():.0f}"


def fit_and_test_cell(group: list[Run]) -> str:
    """Mean seconds of fitting plus testing; "?" when a run predates the test's timing."""
    seconds = [run.fit_and_test_seconds for run in group]
    return "?" if None in seconds else f"{pd.Series(seconds, dtype=float).mean():.0f}"


def summarise(found: list[Run]) -> pd.DataFrame:
    """One row per configuration, in the order configurations first appear."""
    with_tta = any(run.test_acc_tta is not None for run in found)
    rows = []
    for configuration in dict.fromkeys(run.configuration for run in found):
        group = sorted(
            (run for run in found if run.configuration == configuration), key=lambda r: r.seed
        )
        frame = pd.DataFrame([vars(run) for run in group])
        row = {
            "configuration": f"`{configuration}`",
            "seeds": ", ".join(str(s) for s in frame["seed"]),
            "test acc (%)": mean_and_spread(frame["test_acc"] * 100),
        }
        if with_tta:
            tta = frame["test_acc_tta"].dropna()
            row["with TTA (%)"] = mean_and_spread(tta * 100) if len(tta) == len(frame) else ""
        row |= {
            f"time to {float(HEADLINE_ACCURACY):.0%} (s)": time_cell(group),
            "s / epoch": f"{frame['seconds_per_epoch'].mean():.1f}",
            "fit + test (s)": fit_and_test_cell(group),
            "best epoch": ", ".join(
                "?" if pd.isna(e) else str(int(e)) for e in frame["best_epoch"]
            ),
            "epochs run": ", ".join(str(e) for e in frame["epochs"]),
            "parameters": ", ".join(f"{p:,}" for p in dict.fromkeys(frame["parameters"])),
            "device": ", ".join(dict.fromkeys(frame["device"])),
        }
        rows.append(row)
    return pd.DataFrame(rows)


def reproduce_commands(found: list[Run]) -> list[str]:
    """The command that re-runs each command-line configuration over its seeds. ``-m`` comes
    first: Hydra's argument parser takes no option between overrides."""
    commands: dict[str, list[int]] = {}
    for run in found:
        if run.from_command_line:
            commands.setdefault(run.configuration, []).append(run.seed)
    return [
        "python -m fmnist_lightning.train -m "
        + ("" if label == "default" else f"{label} ")
        + f"seed={','.join(str(s) for s in sorted(set(seeds)))}"
        for label, seeds in commands.items()
    ]


def ensembles_markdown(ensembles: list[Ensemble]) -> str:
    """The ensembles' table, its legend and how to make one."""
    return (
        "\n\nEnsembles (`python -m fmnist_lightning.ensemble`: the mean softmax of its "
        "members, each with the TTA shown), evaluated once on the test set after the choice on "
        "validation:\n\n"
        + markdown_table(ensembles_frame(ensembles))
        + "\n\n*members' fit*: the members' fits one after the other, mean over ensembles; "
        "members of one ensemble share their train/val split (one `data.split_seed`).\n\n"
        "```bash\npython -m fmnist_lightning.ensemble 'members=[<run>,<run>]' split=test\n```"
    )


def results_markdown(found: list[Run], ensembles: Sequence[Ensemble] = ()) -> str:
    text = markdown_table(summarise(found))
    text += (
        "\n\nTest accuracy: mean ± sample standard deviation over seeds, of the checkpoint "
        "with the best validation accuracy (its epoch is *best epoch*, counted from 1)"
    )
    if any(run.test_acc_tta is not None for run in found):
        text += "; *with TTA*: the same checkpoint, mean softmax over the test-time views"
    text += (
        f". *time to {float(HEADLINE_ACCURACY):.0%}*: mean over seeds of the wall-clock seconds "
        f"from the start of fitting until validation accuracy first reached "
        f"{float(HEADLINE_ACCURACY):.0%} ({NOT_REACHED}: some seed never did). *s / epoch*: "
        "wall time of fitting divided by the epochs run, validation included. *fit + test*: "
        "mean seconds of fitting plus testing the best checkpoint (?: a run written before "
        "the test was timed)."
    )
    commands = reproduce_commands(found)
    if commands:
        text += "\n\nReproduce with:\n\n```bash\n" + "\n".join(commands) + "\n```"
    if ensembles:
        text += ensembles_markdown(list(ensembles))
    return text + "\n"


def replace_between_markers(document: str, text: str) -> str:
    """``document`` with what stands between README_START and README_END replaced by ``text``."""
    start, end = document.find(README_START), document.find(README_END)
    if start < 0 or end < start:
        raise ValueError(
            f"it needs the markers {README_START} and {README_END} (in that order) around the "
            "place of the table"
        )
    return f"{document[: start + len(README_START)]}\n{text}{document[end:]}"


def plot_curves(found: list[Run]) -> dict[str, list[pd.DataFrame]]:
    """Per configuration, the validation curves of its runs that logged elapsed_seconds."""
    curves: dict[str, list[pd.DataFrame]] = {}
    for run in found:
        if run.curve is not None and "elapsed_seconds" in run.curve:
            curves.setdefault(run.configuration, []).append(run.curve)
    return curves


def save_plot(found: list[Run], path: Path) -> int:
    """Draw validation accuracy against time into ``path``; the number of runs drawn."""
    import matplotlib.pyplot as plt

    from fmnist_lightning.analysis.curve_plots import accuracy_against_time

    curves = plot_curves(found)
    figure = accuracy_against_time(curves, threshold=float(HEADLINE_ACCURACY))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return sum(len(frames) for frames in curves.values())


def report_unreadable(problems: list[str], what: str = "a run") -> None:
    for problem in problems:
        print(f"Skipped {what} that cannot be read: {problem}", file=sys.stderr)


# The files of a run or ensemble folder that this command reads: its inputs.
RECORDS = (
    run_files.CONFIG_YAML,
    run_files.METRICS_CSV,
    run_files.TEST_METRICS_JSON,
    run_files.ENSEMBLE_METRICS_JSON,
)


def files_in(folders: Iterable[Path]) -> Iterator[Path]:
    """The records this command reads in ``folders`` (run or ensemble folders)."""
    return (folder / name for folder in folders for name in RECORDS)


def refuse_an_input(parser: argparse.ArgumentParser, output: Path, inputs: Iterable[Path]) -> None:
    """End the command, before it writes anything, when ``output`` is one of ``inputs``."""
    try:
        check_not_an_input(output, inputs)
    except OutputFileError as error:
        parser.error(f"{error}; choose another --output")


def write_file(path: Path, text: str) -> None:
    """``text`` into ``path``, whole or not at all; a failure (a full disk) ends the command in
    one line, the earlier file kept."""
    try:
        write_atomically(path, text.encode())
    except OutputFileError as error:
        print(f"error: {error}. Free some space or choose another file.", file=sys.stderr)
        sys.exit(1)


def write_table(text: str, output: Path, runs: int) -> None:
    """Write the table to ``output`` and print it (the count of runs to stderr)."""
    write_file(output, text)
    print(text, end="")
    print(f"\nWrote {output} ({runs} runs).", file=sys.stderr)


def write_selection(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """--validation: the validation table of the runs under args.folders."""
    if args.readme is not None or args.plot is not None:
        parser.error("--validation writes its table to --output only (no --readme, no --plot)")
    try:
        found, problems = find_validation_runs(args.folders)
    except FileNotFoundError as error:
        parser.error(str(error))
    report_unreadable(problems)
    if not found:
        parser.error(
            f"no run under {', '.join(str(f) for f in args.folders)} has logged a validation "
            f"epoch ({run_files.METRICS_CSV} with val_acc)"
        )
    output = args.output or Path("selection.md")
    refuse_an_input(parser, output, files_in(run.folder for run in found))
    write_table(selection_markdown(found), output, len(found))
    return 0


def write_results(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """The results table of the finished runs under args.folders, and the README and plot."""
    try:
        found, unfinished, problems = find_runs(args.folders)
    except FileNotFoundError as error:
        parser.error(str(error))
    ensembles, ensemble_problems = find_ensembles(args.folders)
    report_unreadable(problems, "a run")
    report_unreadable(ensemble_problems, "an ensemble")
    if unfinished:
        print(
            f"Skipped {len(unfinished)} unfinished run(s) (no {run_files.TEST_METRICS_JSON}): "
            + ", ".join(str(f) for f in unfinished),
            file=sys.stderr,
        )
    if not found:
        parser.error(
            f"no finished runs (folders with {run_files.TEST_METRICS_JSON}) under "
            + ", ".join(str(f) for f in args.folders)
        )
    text = results_markdown(found, ensembles)
    readme = None
    if args.readme is not None:  # check it before writing anything
        try:
            readme = replace_between_markers(args.readme.read_text(), text)
        except (OSError, ValueError) as error:
            parser.error(f"--readme {args.readme}: {error}")
    output = args.output or Path("results.md")
    folders = [item.folder for item in [*found, *ensembles]]
    refuse_an_input(parser, output, [*([args.readme] if args.readme else []), *files_in(folders)])
    write_table(text, output, len(found))
    if readme is not None:
        write_file(args.readme, readme)
        print(f"Updated the table in {args.readme}.", file=sys.stderr)
    if args.plot is not None:
        drawn = save_plot(found, args.plot)
        print(f"Wrote {args.plot} ({drawn} runs with elapsed_seconds).", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fmnist_lightning.results",
        description="Markdown table of finished runs: test accuracy mean ± std per configuration.",
    )
    parser.add_argument("folders", nargs="+", type=Path, help="run folders or sweep folders")
    parser.add_argument(
        "--output",
        type=Path,
        help="Markdown file to write (default results.md; selection.md with --validation)",
    )
    parser.add_argument(
        "--readme",
        type=Path,
        help=f"a Markdown file whose text between {README_START} and {README_END} becomes the table",
    )
    parser.add_argument(
        "--plot", type=Path, help="PNG of validation accuracy against wall-clock seconds"
    )
    parser.add_argument(
        "--validation",
        action="store_true",
        help="the validation table to choose recipes on (reads no test figure) instead",
    )
    args = parser.parse_args(argv)
    return write_selection(parser, args) if args.validation else write_results(parser, args)


if __name__ == "__main__":
    sys.exit(main())
