"""The results table, regenerated from finished runs: test accuracy mean ± std over seeds.

    python -m fmnist_lightning.results lightning_logs/sweeps/<sweep> [more run or sweep folders]
        [--output results.md] [--readme README.md] [--plot accuracy_time.png]

Every folder below the given ones that holds a finished run (``test_metrics.json``) is
one row of data. Runs are grouped by configuration: the command-line overrides the run
was started with (Hydra's ``.hydra/overrides.yaml``) minus the seed and paths, so the
three jobs of ``experiment=best -m seed=0,1,2`` form one row ``experiment=best``. Runs
started from Python, without Hydra's record, are labelled by their network instead.
An override whose value is a path is shown as ``key=<checkpoint>`` (or ``<path>``), so the
table and its commands hold nothing of this machine.

A folder whose files cannot be read is reported in one line and left out; resume
bookkeeping (``.hydra/``) and sweep or search summary folders are not runs.
``--readme`` replaces what stands between ``<!-- results:start -->`` and
``<!-- results:end -->`` in that file with the table; ``--plot`` draws validation accuracy
against wall-clock seconds (``elapsed_seconds`` of metrics.csv), one line per configuration.

It needs pandas, OmegaConf and matplotlib only: this command imports no torch.
"""

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fmnist_lightning.analysis import run_files
from fmnist_lightning.analysis.tables import markdown_table

# Overrides that do not change what is trained: where data and outputs live, and the seed.
IGNORED_OVERRIDES = (
    "seed",
    "data.root",
    "paths.",
    "hydra.",
    "+hydra.",
    "callbacks.progress_bar",
    "callbacks.progress_bar.",
)
HYDRA_DIR = ".hydra"
HYDRA_OVERRIDES = Path(HYDRA_DIR) / "overrides.yaml"
# Files of a sweep's or a search's own folder (Hydra's multirun record, the sweep summary,
# Optuna's result): such a folder summarises runs and is not one.
SUMMARY_FILES = ("multirun.yaml", "summary.csv", "optimization_results.yaml")
CHECKPOINT_SUFFIXES = (".ckpt", ".pt", ".pth")
README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"
# The time-to-accuracy column: seconds until val_acc first reached this (time_to_val_acc key).
HEADLINE_ACCURACY = "0.93"
NOT_REACHED = "—"
# Problems reading a run folder that leave that folder out of the table.
READ_ERRORS = (OSError, ValueError, KeyError, TypeError, yaml.YAMLError, OmegaConfBaseException)


class RunReadError(ValueError):
    """A run folder whose files cannot be read; the message names the file and the problem."""


@dataclass
class Run:
    folder: Path
    configuration: str
    from_command_line: bool
    seed: int
    test_acc: float
    test_acc_tta: float | None
    best_epoch: int | None
    epochs: int
    parameters: int
    seconds_per_epoch: float
    timed: bool  # test_metrics.json has time_to_val_acc (runs before it had none)
    time_to_headline: float | None  # seconds to HEADLINE_ACCURACY; None: never reached
    device: str
    curve: pd.DataFrame | None = field(default=None, repr=False)  # epoch, val_acc, elapsed


def is_ignored(override: str) -> bool:
    key = override.split("=", 1)[0]
    return any(
        key.startswith(name) if name.endswith(".") else key == name for name in IGNORED_OVERRIDES
    )


def looks_like_path(value: str) -> bool:
    """A file or folder name: it has a separator, starts like a path or ends like a checkpoint."""
    return (
        "/" in value
        or "\\" in value
        or value.startswith(("~", "./", "../"))
        or value.lower().endswith(CHECKPOINT_SUFFIXES)
    )


def portable(override: str) -> str:
    """An override as a table may show it: a path value becomes <checkpoint> or <path>."""
    key, sep, value = override.partition("=")
    value = value.strip("'\"")
    if not sep or not looks_like_path(value):
        return override
    placeholder = "<checkpoint>" if value.lower().endswith(CHECKPOINT_SUFFIXES) else "<path>"
    return f"{key}={placeholder}"


def describe_config(config: dict) -> str:
    """A label from the saved config, for runs without Hydra's overrides record."""
    model = config.get("model", {})
    net = model.get("net", model)  # release 0.1.0 kept the network's arguments in model
    label = net.get("_target_", "?").rsplit(".", 1)[-1]
    if net.get("batch_norm"):
        label += " + BN"
    augment = config.get("data", {}).get("augment") or {}
    switches = [name for name in ("crop", "flip", "erase") if augment.get(name)]
    if switches:
        label += " + " + "/".join(switches)
    return label


def configuration_of(folder: Path, config: dict) -> tuple[str, bool]:
    """(label, whether it is the command line's overrides)."""
    overrides_file = folder / HYDRA_OVERRIDES
    if overrides_file.is_file():
        overrides = OmegaConf.to_container(OmegaConf.load(overrides_file)) or []
        kept = [portable(str(o)) for o in overrides if not is_ignored(str(o))]
        return (" ".join(kept) if kept else "default"), True
    return describe_config(config), False


def validation_curve(metrics_csv: Path) -> pd.DataFrame | None:
    """epoch, val_acc (and elapsed_seconds when logged) per epoch; None without val_acc."""
    if not metrics_csv.is_file():
        return None
    epochs = run_files.epoch_metrics(metrics_csv)
    if "val_acc" not in epochs or epochs["val_acc"].isna().all():
        return None
    columns = [c for c in ("epoch", "val_acc", "elapsed_seconds") if c in epochs]
    return epochs[columns].dropna(subset=["val_acc"]).reset_index(drop=True)


def best_epoch(curve: pd.DataFrame | None) -> int | None:
    """The 1-based epoch with the highest validation accuracy (the tested checkpoint's)."""
    if curve is None:
        return None
    return int(curve.loc[curve["val_acc"].idxmax(), "epoch"]) + 1


def optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def read_part(folder: Path, name: str, reader: Any) -> Any:
    """``reader(folder / name)``, a problem becoming a RunReadError that names the file."""
    try:
        return reader(folder / name)
    except READ_ERRORS as error:
        detail = next(iter(str(error).splitlines()), "") or type(error).__name__
        raise RunReadError(f"{name}: {type(error).__name__}: {detail[:200]}") from error


def read_run(folder: Path) -> Run:
    """One finished run; RunReadError when one of its files cannot be read."""
    test = read_part(folder, run_files.TEST_METRICS_JSON, run_files.read_json)
    if not isinstance(test, dict) or not isinstance(test.get("test_acc"), (int, float)):
        raise RunReadError(f"{run_files.TEST_METRICS_JSON}: no number under test_acc")

    def load_config(path: Path) -> dict:
        return OmegaConf.to_container(OmegaConf.load(path)) if path.is_file() else {}

    config = read_part(folder, run_files.CONFIG_YAML, load_config)
    configuration, from_command_line = read_part(
        folder, str(HYDRA_OVERRIDES), lambda _: configuration_of(folder, config)
    )
    curve = read_part(folder, run_files.METRICS_CSV, validation_curve)
    times = test.get("time_to_val_acc")
    try:
        return Run(
            folder=folder,
            configuration=configuration,
            from_command_line=from_command_line,
            seed=int(config.get("seed", -1)),
            test_acc=float(test["test_acc"]),
            test_acc_tta=optional_float(test.get("test_acc_tta")),
            best_epoch=best_epoch(curve),
            epochs=int(test.get("epochs", 0)),
            parameters=int(test.get("parameters", 0)),
            seconds_per_epoch=float(test.get("seconds_per_epoch") or math.nan),
            timed=isinstance(times, dict),
            time_to_headline=optional_float(times.get(HEADLINE_ACCURACY))
            if isinstance(times, dict)
            else None,
            device=str(test.get("device", "?")),
            curve=curve,
        )
    except (ValueError, TypeError) as error:
        raise RunReadError(f"{run_files.TEST_METRICS_JSON}: {error}") from error


def is_run_folder(folder: Path, root: Path) -> bool:
    """A folder with config.yaml that is neither Hydra's bookkeeping nor a sweep's summary."""
    inside = folder.relative_to(root).parts if folder != root else ()
    if any(part.startswith(HYDRA_DIR) for part in inside):  # .hydra/, .hydra/resumed-<time>/
        return False
    return not any((folder / name).is_file() for name in SUMMARY_FILES)


def find_runs(folders: list[Path]) -> tuple[list[Run], list[Path], list[str]]:
    """Finished runs under the folders (in the order given), unfinished run folders, and one
    line per folder that could not be read."""
    finished, unfinished, problems = [], [], []
    for folder in folders:
        if not folder.is_dir():
            raise FileNotFoundError(f"'{folder}' is not a folder: pass run or sweep folders.")
        for config_file in sorted(folder.rglob(run_files.CONFIG_YAML)):
            run_folder = config_file.parent
            if not is_run_folder(run_folder, folder):
                continue
            if not (run_folder / run_files.TEST_METRICS_JSON).is_file():
                unfinished.append(run_folder)
                continue
            try:
                finished.append(read_run(run_folder))
            except RunReadError as error:
                problems.append(f"{run_folder}: {error}")
    return finished, unfinished, problems


def mean_and_spread(values: pd.Series) -> str:
    """ "92.21 ± 0.16" (sample std over seeds), or the mean alone for one seed."""
    spread = f" ± {values.std(ddof=1):.2f}" if len(values) > 1 else ""
    return f"{values.mean():.2f}{spread}"


def time_cell(group: list[Run]) -> str:
    """Mean seconds to HEADLINE_ACCURACY; "—" with a count when some seed never got there."""
    if not all(run.timed for run in group):
        return "?"  # a run written before time to accuracy was recorded
    missed = sum(run.time_to_headline is None for run in group)
    if missed:
        return f"{NOT_REACHED} ({missed} of {len(group)} not reached)"
    seconds = pd.Series([run.time_to_headline for run in group], dtype=float)
    return f"{seconds.mean():.0f}"


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
    """The command that re-runs each command-line configuration over its seeds."""
    commands: dict[str, list[int]] = {}
    for run in found:
        if run.from_command_line:
            commands.setdefault(run.configuration, []).append(run.seed)
    return [
        "python -m fmnist_lightning.train "
        + ("" if label == "default" else f"{label} ")
        + f"-m seed={','.join(str(s) for s in sorted(set(seeds)))}"
        for label, seeds in commands.items()
    ]


def results_markdown(found: list[Run]) -> str:
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
        "wall time of fitting divided by the epochs run, validation included."
    )
    commands = reproduce_commands(found)
    if commands:
        text += "\n\nReproduce with:\n\n```bash\n" + "\n".join(commands) + "\n```"
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

    from fmnist_lightning.analysis.plots import accuracy_against_time

    curves = plot_curves(found)
    figure = accuracy_against_time(curves, threshold=float(HEADLINE_ACCURACY))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return sum(len(frames) for frames in curves.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fmnist_lightning.results",
        description="Markdown table of finished runs: test accuracy mean ± std per configuration.",
    )
    parser.add_argument("folders", nargs="+", type=Path, help="run folders or sweep folders")
    parser.add_argument(
        "--output", type=Path, default=Path("results.md"), help="Markdown file to write"
    )
    parser.add_argument(
        "--readme",
        type=Path,
        help=f"a Markdown file whose text between {README_START} and {README_END} becomes the table",
    )
    parser.add_argument(
        "--plot", type=Path, help="PNG of validation accuracy against wall-clock seconds"
    )
    args = parser.parse_args(argv)
    try:
        found, unfinished, problems = find_runs(args.folders)
    except FileNotFoundError as error:
        parser.error(str(error))
    for problem in problems:
        print(f"Skipped a run that cannot be read: {problem}", file=sys.stderr)
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
    text = results_markdown(found)
    readme = None
    if args.readme is not None:  # check it before writing anything
        try:
            readme = replace_between_markers(args.readme.read_text(), text)
        except (OSError, ValueError) as error:
            parser.error(f"--readme {args.readme}: {error}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text, end="")
    print(f"\nWrote {args.output} ({len(found)} runs).", file=sys.stderr)
    if readme is not None:
        args.readme.write_text(readme)
        print(f"Updated the table in {args.readme}.", file=sys.stderr)
    if args.plot is not None:
        drawn = save_plot(found, args.plot)
        print(f"Wrote {args.plot} ({drawn} runs with elapsed_seconds).", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
