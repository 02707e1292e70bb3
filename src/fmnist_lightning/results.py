"""Markdown table of finished runs: test accuracy mean ± std over seeds per configuration.

    python -m fmnist_lightning.results lightning_logs/sweeps/<sweep> [more run or sweep folders]
        [--output results.md] [--readme README.md] [--plot accuracy_time.png]
    python -m fmnist_lightning.results --validation lightning_logs/sweeps/<sweep> [...]
        [--output selection.md]

One row per configuration (the seeds of one command line), and a second table of the
ensembles evaluated on the test set. --readme: the table replaces what stands between
<!-- results:start --> and <!-- results:end --> in that file. An --output that is the
README or one of the records read is refused; a full disk keeps the earlier file. --plot:
validation accuracy against wall-clock seconds of fitting, one line per configuration.
--validation: the table to choose recipes on instead, ranked by validation accuracy from
metrics.csv alone (no test figure is read; runs still going count).
"""

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from fmnist_lightning import cli
from fmnist_lightning.analysis import finished_runs, run_files
from fmnist_lightning.analysis.ensembles import ensembles_frame, find_ensembles
from fmnist_lightning.analysis.finished_runs import NOT_REACHED, find_runs, listed, mean_and_spread
from fmnist_lightning.analysis.tables import markdown_table
from fmnist_lightning.errors import UsageError
from fmnist_lightning.inference.output_files import check_output, write_atomically

README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"
HEADLINE = f"{float(finished_runs.HEADLINE_ACCURACY):.0%}"
TEACHER_FIT = "teacher's fit (s)"  # a column only where some run was distilled
# The files of a run or ensemble folder that this command reads: never an --output.
RECORDS = (run_files.CONFIG_YAML, run_files.METRICS_CSV, run_files.TEST_METRICS_JSON)
RECORDS += (run_files.ENSEMBLE_METRICS_JSON,)
FULL_DISK = ". Free some space or choose another file."


def time_cell(group: pd.DataFrame) -> str:
    """Mean seconds to HEADLINE_ACCURACY; "—" with a count when some seed never got there."""
    if not group["timed"].all():
        return "?"  # a run written before time to accuracy was recorded
    if missed := group["time_to_headline"].isna().sum():
        return f"{NOT_REACHED} ({missed} of {len(group)} not reached)"
    return f"{group['time_to_headline'].astype(float).mean():.0f}"


def teacher_cell(group: pd.DataFrame) -> str:
    """A distilled configuration's teacher's fit seconds, its members' together (one teacher
    per configuration); "" for an undistilled one, "?" where a member's fit is unknown."""
    if not group["distilled"].any():
        return ""
    fits = group["teacher_fit_seconds"]
    return "?" if fits.isna().any() else listed((f"{s:.0f}" for s in fits), unique=True)


def result_cells(group: pd.DataFrame) -> dict[str, str]:
    tta, fit_and_test = group["test_acc_tta"].dropna(), group["fit_and_test_seconds"]
    return {
        "seeds": listed(group["seed"]),
        "test acc (%)": mean_and_spread(group["test_acc"] * 100),
        "with TTA (%)": mean_and_spread(tta * 100) if len(tta) == len(group) else "",
        f"time to {HEADLINE} (s)": time_cell(group),
        "s / epoch": f"{group['seconds_per_epoch'].mean():.1f}",
        # "?": a run written before the test was timed
        "fit + test (s)": "?" if fit_and_test.isna().any() else f"{fit_and_test.mean():.0f}",
        TEACHER_FIT: teacher_cell(group),
        "best epoch": listed("?" if pd.isna(e) else int(e) for e in group["best_epoch"]),
        "epochs run": listed(group["epochs"]),
        "parameters": listed((f"{p:,}" for p in group["parameters"]), unique=True),
        "device": listed(group["device"], unique=True),
    }


def summarise(found: list[SimpleNamespace]) -> pd.DataFrame:
    with_tta = any(run.test_acc_tta is not None for run in found)
    distilled = any(run.distilled for run in found)
    table = finished_runs.per_configuration(found, "seed", result_cells)
    unused = [] if with_tta else ["with TTA (%)"]
    return table.drop(columns=unused + ([] if distilled else [TEACHER_FIT]))


def validation_cells(group: pd.DataFrame) -> dict[str, str | float]:
    tta = group["best_val_acc_tta"].dropna()
    with_tta = len(tta) == len(group)
    per_seed = [f"{100 * r.best_val_acc:.2f}" for r in group.itertuples()]
    if with_tta:
        per_seed = [f"{s} / {100 * t:.2f}" for s, t in zip(per_seed, tta, strict=True)]
    return {
        "seeds": listed(group["seed"]),
        "best val acc (%)": mean_and_spread(group["best_val_acc"] * 100),
        "with TTA (%)": mean_and_spread(tta * 100) if with_tta else "",
        "per seed (%)": ", ".join(per_seed),
        "best epoch": listed(group["best_epoch"]),
        "epochs run": listed(group["epochs"]),
        "rank": tta.mean() if with_tta else group["best_val_acc"].mean(),
    }


def selection_markdown(runs: list[SimpleNamespace]) -> str:
    """One row per configuration, best mean validation accuracy (with TTA, if all had) first."""
    table = finished_runs.per_configuration(runs, "seed", validation_cells)
    table = table.sort_values("rank", ascending=False, kind="stable").drop(columns="rank")
    return (
        markdown_table(table)
        + "\n\nValidation accuracy only (no test figure is read): per run the best epoch's "
        "val_acc and the best val_acc with test-time augmentation, then mean ± sample "
        "standard deviation over seeds; *per seed*: plain / with TTA. Rows are ranked by the "
        "mean with TTA (plain where a run had none).\n"
    )


def results_markdown(found: list[SimpleNamespace], ensembles: Sequence = ()) -> str:
    table = summarise(found)
    tta = "; *with TTA*: the same checkpoint, mean softmax over the test-time views"
    text = markdown_table(table) + (
        "\n\nTest accuracy: mean ± sample standard deviation over seeds, of the checkpoint with "
        "the best validation accuracy (its epoch is *best epoch*, counted from 1)"
        f"{tta if 'with TTA (%)' in table else ''}. *time to {HEADLINE}*: mean over seeds of the "
        "wall-clock seconds from the start of fitting until validation accuracy first reached "
        f"{HEADLINE} ({NOT_REACHED}: some seed never did). *s / epoch*: wall time of fitting "
        "divided by the epochs run, validation included. *fit + test*: mean seconds of fitting "
        "plus testing the best checkpoint (?: a run written before the test was timed)."
    )
    if TEACHER_FIT in table:
        text += (
            " *teacher's fit*: a distilled configuration's teacher, its members' fits one "
            "after the other (the student's own are in *fit + test*); *teacher=*: its id."
        )
    # The command that re-runs each command-line configuration over its seeds. ``-m`` comes
    # first: Hydra's argument parser takes no option between overrides.
    seeds: dict[str, set[int]] = {}
    for run in found:
        if run.from_command_line:  # a distilled run's label ends in teacher=<id>, no override
            line = run.configuration.removesuffix(f" {run.teacher}" if run.teacher else "")
            seeds.setdefault(line, set()).add(run.seed)
    commands = [
        f"python -m fmnist_lightning.train -m {'' if label == 'default' else label + ' '}"
        f"seed={','.join(map(str, sorted(numbers)))}"
        for label, numbers in seeds.items()
    ]
    if commands:
        text += "\n\nReproduce with:\n\n```bash\n" + "\n".join(commands) + "\n```"
    if ensembles:
        text += (
            "\n\nEnsembles (`python -m fmnist_lightning.ensemble`: the mean softmax of its "
            "members, each with the TTA shown), evaluated once on the test set after the choice "
            "on validation:\n\n"
            + markdown_table(ensembles_frame(list(ensembles)))
            + "\n\n*members' fit*: the members' fits one after the other, mean over ensembles; "
            "members of one ensemble share their train/val split (one `data.split_seed`).\n\n"
            "```bash\npython -m fmnist_lightning.ensemble 'members=[<run>,<run>]' split=test\n```"
        )
    return text + "\n"


def replace_between_markers(document: str, text: str) -> str:
    start, end = document.find(README_START), document.find(README_END)
    if start < 0 or end < start:
        raise ValueError(
            f"it needs the markers {README_START} and {README_END} (in that order) around the "
            "place of the table"
        )
    return f"{document[: start + len(README_START)]}\n{text}{document[end:]}"


def write_table(text: str, output: Path, runs: int, folders: Iterable[Path], *others: Path) -> None:
    """Write the table to ``output`` unless it is one of the records of ``folders`` (or
    ``others``), and print it."""
    inputs = [*others, *(folder / name for folder in folders for name in RECORDS)]
    check_output(output, inputs, overwrite=True)  # refused before anything is written
    write_atomically(output, text, FULL_DISK)
    print(text, end="")
    print(f"\nWrote {output} ({runs} runs).", file=sys.stderr)


def report_unreadable(problems: list[str], what: str = "a run") -> None:
    for problem in problems:
        print(f"Skipped {what} that cannot be read: {problem}", file=sys.stderr)


def write_selection(args: argparse.Namespace) -> None:
    if args.readme is not None or args.plot is not None:
        raise UsageError("--validation writes its table to --output only (no --readme, no --plot)")
    found, _, problems = find_runs(args.folders, finished_runs.read_validation_run)
    report_unreadable(problems)
    if not found:
        raise UsageError(
            f"no run under {', '.join(str(f) for f in args.folders)} has logged a validation "
            f"epoch ({run_files.METRICS_CSV} with val_acc)"
        )
    output = args.output or Path("selection.md")
    write_table(selection_markdown(found), output, len(found), (run.folder for run in found))


def write_results(args: argparse.Namespace) -> None:
    found, unfinished, problems = find_runs(args.folders)
    ensembles, ensemble_problems = find_ensembles(args.folders, found)
    report_unreadable(problems)
    report_unreadable(ensemble_problems, "an ensemble")
    if unfinished:
        names = f"{len(unfinished)} unfinished run(s) (no {run_files.TEST_METRICS_JSON})"
        print(f"Skipped {names}: {listed(unfinished)}", file=sys.stderr)
    if not found:
        where = f"(folders with {run_files.TEST_METRICS_JSON}) under {listed(args.folders)}"
        raise UsageError(f"no finished runs {where}")
    text = results_markdown(found, ensembles)
    readme = None
    if args.readme is not None:  # check it before writing anything
        try:
            readme = replace_between_markers(args.readme.read_text(), text)
        except (OSError, ValueError) as error:
            raise UsageError(f"--readme {args.readme}: {error}") from error
    folders = [item.folder for item in [*found, *ensembles]]
    output = args.output or Path("results.md")
    write_table(text, output, len(found), folders, *([args.readme] if args.readme else []))
    if readme is not None:
        write_atomically(args.readme, readme, FULL_DISK)
        print(f"Updated the table in {args.readme}.", file=sys.stderr)
    if args.plot is not None:  # val accuracy against seconds, one line per configuration
        from fmnist_lightning.analysis.curve_plots import accuracy_against_time

        curves: dict[str, list[pd.DataFrame]] = {}
        for run in found:
            if run.curve is not None and "elapsed_seconds" in run.curve:
                curves.setdefault(run.configuration, []).append(run.curve)
        figure = accuracy_against_time(curves, threshold=float(finished_runs.HEADLINE_ACCURACY))
        write_atomically(args.plot, run_files.png_bytes(figure), FULL_DISK)
        drawn = sum(len(frames) for frames in curves.values())
        print(f"Wrote {args.plot} ({drawn} runs with elapsed_seconds).", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fmnist_lightning.results",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("folders", nargs="+", type=Path, help="run folders or sweep folders")
    parser.add_argument("--output", type=Path, help="results.md, selection.md with --validation")
    parser.add_argument("--readme", type=Path, help="a Markdown file to put the table in")
    parser.add_argument("--plot", type=Path, help="PNG of val accuracy against seconds")
    parser.add_argument("--validation", action="store_true", help="the table to choose on")
    args = parser.parse_args(argv)
    (write_selection if args.validation else write_results)(args)
    return 0


if __name__ == "__main__":
    cli.run(main)
