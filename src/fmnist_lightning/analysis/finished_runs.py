"""Runs read from their folders, as rows of the results tables; the one writer of a set of
runs' summary (summary.csv or trials.csv, and summary.md) for sweeps and searches.

Runs that trained the same thing share a *configuration*: Hydra's composed config
(``.hydra/config.yaml``, saved before interpolation, so keys that follow the seed or the
folder read alike) minus the seed and where data and outputs live. It is labelled by the
shortest command line among its runs (``.hydra/overrides.yaml`` minus seed and paths), so
``-m experiment=best seed=0,1,2`` is one row; runs started from Python are labelled by their
network. Path values become placeholders, so nothing of this machine is shown; a distilled
run's label ends in its teacher's short hash (teacher.json), so different teachers are
different configurations.
``read_validation_run`` never reads ``test_metrics.json``: a search is judged without a
test figure in sight, and a sweep can be read while it runs.
"""

import csv
import math
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import yaml

from fmnist_lightning.analysis import run_files, tables
from fmnist_lightning.errors import UsageError
from fmnist_lightning.inference.output_files import write_atomically

# Overrides (or keys) that do not change what is trained: where data and outputs live, the
# seed, the progress bar; each with every key below it.
IGNORED = re.compile(
    r"(seed|data\.root|paths|\+?hydra|(callbacks\.|trainer\.enable_)progress_bar)([.=]|$)"
)
# Files of a sweep's or a search's own folder (Hydra's multirun record, the sweep summary,
# Optuna's result): such a folder summarises runs and is not one.
SUMMARY_CSV, SUMMARY_MD, SUMMARY_PNG = "summary.csv", "summary.md", "summary.png"
SUMMARY_FILES = ("multirun.yaml", SUMMARY_CSV, "optimization_results.yaml")
# The time-to-accuracy column: seconds until val_acc first reached this (time_to_val_acc key).
HEADLINE_ACCURACY = "0.93"
NOT_REACHED = "—"
# Problems reading a run folder that leave that folder out of the table.
READ_ERRORS = (OSError, ValueError, KeyError, TypeError, csv.Error, yaml.YAMLError)


def write_summary(
    folder: Path, csv_name: str, frame: pd.DataFrame, head: str, shown=None, decimals=None, tail=""
) -> None:
    """``frame`` as ``folder/csv_name``, and summary.md: ``head``, the table of ``shown`` (the
    frame as displayed; ``frame`` itself by default), ``tail``."""
    write_atomically(folder / csv_name, frame.to_csv(index=False))
    table = tables.markdown_table(frame if shown is None else shown, decimals)
    write_atomically(folder / SUMMARY_MD, f"{head}\n{table}\n{tail}")


def per_configuration(items: Iterable, order: str, cells: Callable) -> pd.DataFrame:
    """One row per configuration, in the order configurations first appear: the configuration,
    then ``cells(group)`` (``group``: its items' fields as a frame sorted by ``order``)."""
    groups = pd.DataFrame([vars(item) for item in items]).groupby("configuration", sort=False)
    return pd.DataFrame(
        {"configuration": f"`{name}`", **cells(group.sort_values(order, kind="stable"))}
        for name, group in groups
    )


def listed(values: Iterable, unique: bool = False) -> str:
    """Values as one cell, "0, 1, 2"; with ``unique`` each value once."""
    return ", ".join(str(value) for value in (dict.fromkeys(values) if unique else values))


def mean_and_spread(values: pd.Series) -> str:
    """ "92.21 ± 0.16" (sample std over seeds), or the mean alone for one seed."""
    spread = f" ± {values.std(ddof=1):.2f}" if len(values) > 1 else ""
    return f"{values.mean():.2f}{spread}"


def portable(override: str) -> str:
    """An override with a path value (a separator, a start like a path, a checkpoint's
    suffix) as <checkpoint> or <path>."""
    key, sep, value = override.partition("=")
    value = value.strip("'\"")
    checkpoint = value.lower().endswith((".ckpt", ".pt", ".pth"))
    path = checkpoint or "/" in value or "\\" in value or value.startswith(("~", "./", "../"))
    if not sep or not path:
        return override
    return f"{key}={'<checkpoint>' if checkpoint else '<path>'}"


def describe_config(config: dict) -> str:
    """A label from the saved config, for runs without Hydra's overrides record."""
    model = config.get("model", {})
    net = model.get("net", model)  # release 0.1.0 kept the network's arguments in model
    label = net.get("_target_", "?").rsplit(".", 1)[-1] + (" + BN" if net.get("batch_norm") else "")
    augment = config.get("data", {}).get("augment") or {}
    switches = [name for name in ("crop", "flip", "erase") if augment.get(name)]
    return label + (" + " + "/".join(switches) if switches else "")


def flattened(config: dict, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """("model.net.widths", [...]) for every leaf of a nested config."""
    for key, value in config.items():
        if isinstance(value, dict) and value:
            yield from flattened(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def what_was_trained(config: dict) -> str | None:
    """The composed config as one comparable string, without the ignored keys and paths."""
    pairs = [
        portable(f"{k}={v}") if isinstance(v, str) else f"{k}={v!r}"  # only strings hold paths
        for k, v in flattened(config)
        if not IGNORED.match(k)
    ]
    return "\n".join(sorted(pairs)) if config else None


def validation_curve(metrics_csv: Path) -> pd.DataFrame | None:
    """epoch, val_acc (val_acc_tta, elapsed_seconds) per validated epoch; None without any."""
    epochs = run_files.epoch_metrics(metrics_csv) if metrics_csv.is_file() else pd.DataFrame()
    if "val_acc" not in epochs or epochs["val_acc"].isna().all():
        return None
    columns = [c for c in ("epoch", "val_acc", "val_acc_tta", "elapsed_seconds") if c in epochs]
    return epochs[columns].dropna(subset=["val_acc"]).reset_index(drop=True)


def best_epoch(curve: pd.DataFrame | None) -> int | None:
    """The 1-based epoch with the highest validation accuracy (the tested checkpoint's)."""
    return None if curve is None else int(curve.loc[curve["val_acc"].idxmax(), "epoch"]) + 1


def read_part(folder: Path, name: str, reader: Callable[[Path], Any]) -> Any:
    """``reader(folder / name)``, a problem becoming a UsageError that names the file."""
    try:
        return reader(folder / name)
    except READ_ERRORS as error:
        detail = next(iter(str(error).splitlines()), "") or type(error).__name__
        raise UsageError(f"{name}: {type(error).__name__}: {detail[:200]}") from error


def device_label(test: dict) -> str:
    """What a run ran on, as far as older records tell: "cpu (AMD EPYC 7B13, 2 threads)",
    "cpu (2 threads)", "cpu", "cuda:0 (NVIDIA H200)" or "cuda:0"."""
    device, threads = str(test.get("device", "?")), test.get("cpu_threads")
    if isinstance(test.get("gpu_model"), str):
        return f"{device} ({test['gpu_model']})"
    if device != "cpu" or not isinstance(threads, int):
        return device
    processor = f"{test['cpu_model']}, " if isinstance(test.get("cpu_model"), str) else ""
    return f"cpu ({processor}{threads} thread{'s' if threads != 1 else ''})"


def teacher_id(teacher_json: Path) -> str:
    """A distilled run's teacher: the short hash of its members' checkpoints."""
    return str(run_files.read_json(teacher_json)["id"])


def run_record(folder: Path, **fields: Any) -> SimpleNamespace:
    """A run (its fields as attributes) with its seed, its label (``configuration``; a
    distilled run's ends in ``teacher``, its teacher's id), whether that label is its command
    line, and what it trained."""
    from_command_line = (folder / ".hydra/overrides.yaml").is_file()
    # Hydra's copy of the config where there is one: its seed is the run's, and parsing one
    # config, not two, is most of the time ``results`` spends on a folder.
    name = ".hydra/config.yaml" if from_command_line else run_files.CONFIG_YAML
    config = read_part(folder, name, run_files.load_config)
    seed = read_part(folder, name, lambda _: int(config.get("seed", -1)))
    run = SimpleNamespace(folder=folder, seed=seed, from_command_line=from_command_line, **fields)
    run.configuration, run.trained, run.teacher = describe_config(config), None, None
    if from_command_line:
        overrides = read_part(folder, ".hydra/overrides.yaml", run_files.load_config) or []
        kept = [portable(str(o)) for o in overrides if not IGNORED.match(str(o))]
        run.configuration = " ".join(kept) or "default"
        run.trained = what_was_trained(config)
    if (folder / run_files.TEACHER_JSON).is_file():  # its teacher's paths read <path> above
        run.teacher = f"teacher={read_part(folder, run_files.TEACHER_JSON, teacher_id)}"
        run.configuration += f" {run.teacher}"
        run.trained = run.trained and f"{run.trained}\n{run.teacher}"
    return run


def optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def read_test_metrics(path: Path) -> dict[str, Any]:
    """A run's fields from test_metrics.json; None: not recorded by older runs."""
    test = run_files.read_json(path)
    if not isinstance(test, dict) or not isinstance(test.get("test_acc"), (int, float)):
        raise ValueError("no number under test_acc")
    times = test.get("time_to_val_acc")
    timed = isinstance(times, dict)
    seconds = [optional_float(test.get(key)) for key in ("fit_seconds", "test_seconds")]
    teacher = test.get("teacher")  # a distilled run's teacher record (teacher.json)
    distilled = isinstance(teacher, dict)
    return {
        "test_acc": float(test["test_acc"]),
        "test_acc_tta": optional_float(test.get("test_acc_tta")),
        "epochs": int(test.get("epochs", 0)),
        "parameters": int(test.get("parameters", 0)),
        "seconds_per_epoch": float(test.get("seconds_per_epoch") or math.nan),
        "fit_and_test_seconds": None if None in seconds else sum(seconds),
        "timed": timed,
        "time_to_headline": optional_float(times.get(HEADLINE_ACCURACY)) if timed else None,
        "device": device_label(test),
        "distilled": distilled,
        "teacher_fit_seconds": optional_float(teacher.get("fit_seconds")) if distilled else None,
    }


def read_runs(folders: list[Path], read: Callable, marker: str = run_files.CONFIG_YAML) -> tuple:
    """``read`` of every folder holding ``marker`` under the folders (in the order given, once
    however they overlap: ``runs runs/RUN .``), the folders it returned None for, and one line
    per unreadable one."""
    run_folders: dict[Path, Path] = {}  # resolved: as first found
    for folder in folders:
        if not folder.is_dir():
            raise UsageError(f"'{folder}' is not a folder: pass run or sweep folders.")
        for config in sorted(folder.rglob(marker)):
            # .hydra/, .hydra/resumed-<time>/ hold the config of a resumed run's earlier start
            resumed = any(part.startswith(".hydra") for part in config.relative_to(folder).parts)
            if not resumed and not any((config.parent / n).is_file() for n in SUMMARY_FILES):
                run_folders.setdefault(config.parent.resolve(), config.parent)
    read_back, problems = {}, []
    for folder in run_folders.values():
        try:
            read_back[folder] = read(folder)
        except UsageError as error:  # from read_part, naming the file
            problems.append(f"{folder}: {error}")
    found = [run for run in read_back.values() if run is not None]
    skipped = [folder for folder, run in read_back.items() if run is None]
    return found, skipped, problems


def read_run(folder: Path) -> SimpleNamespace | None:
    """One finished run; None when it has no test_metrics.json (yet)."""
    if not (folder / run_files.TEST_METRICS_JSON).is_file():
        return None
    test = read_part(folder, run_files.TEST_METRICS_JSON, read_test_metrics)
    curve = read_part(folder, run_files.METRICS_CSV, validation_curve)
    return run_record(folder, best_epoch=best_epoch(curve), curve=curve, **test)


def read_validation_run(folder: Path) -> SimpleNamespace | None:
    """One run's best validation figures; None when it has not validated yet."""
    epochs = read_part(folder, run_files.METRICS_CSV, validation_curve)
    if epochs is None:
        return None
    tta = epochs.get("val_acc_tta", pd.Series(dtype=float)).dropna()
    return run_record(
        folder,
        best_val_acc=float(epochs["val_acc"].max()),
        best_val_acc_tta=float(tta.max()) if len(tta) else None,
        best_epoch=best_epoch(epochs),
        epochs=int(epochs["epoch"].iloc[-1]) + 1,  # not len(): validations may skip epochs
    )


def find_runs(folders: list[Path], read=read_run) -> tuple[list, list[Path], list[str]]:
    """Runs under the folders (``read_run``: finished ones; ``read_validation_run``: those
    that validated), the folders ``read`` skipped (unfinished), and unreadable ones."""
    found, skipped, problems = read_runs(folders, read)
    # Runs that trained the same thing get one configuration: the shortest command line.
    labels: dict[str, str] = {}
    for run in found:
        if run.trained is not None and run.from_command_line:
            known = labels.get(run.trained, run.configuration)
            labels[run.trained] = min(known, run.configuration, key=len)
    for run in found:
        run.configuration = labels.get(run.trained, run.configuration)
    return found, skipped, problems
