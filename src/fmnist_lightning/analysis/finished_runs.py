"""Finished runs read from their folders: one :class:`Run` per folder with test_metrics.json.

Runs that trained the same thing share a *configuration*: the config Hydra composed for
them (``.hydra/config.yaml``, saved before interpolation, so the keys that follow the seed
or the run's folder read the same in every run) is the same once the seed and where data
and outputs live are set aside. A configuration is labelled by the shortest command line
among its runs (Hydra's ``.hydra/overrides.yaml`` minus the seed and paths), so the three
jobs of ``-m experiment=best seed=0,1,2`` share one, and a seed run as ``experiment=best
trainer.max_epochs=22`` joins them while experiment=best says 22 epochs. Runs started from
Python, without Hydra's record, are labelled by their network instead. A path value
becomes ``key=<checkpoint>`` (or ``<path>``), so nothing of this machine is shown. A
folder whose files cannot be read is one line of ``problems``; resume bookkeeping
(``.hydra/``) and sweep or search summary folders are not runs. Pure: pandas and OmegaConf, no torch.
"""

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fmnist_lightning.analysis import run_files

# Overrides that do not change what is trained: where data and outputs live, and the seed.
IGNORED_OVERRIDES = (
    "seed",
    "data.root",
    "paths.",
    "hydra.",
    "+hydra.",
    "callbacks.progress_bar",
    "callbacks.progress_bar.",
    "trainer.enable_progress_bar",
)
HYDRA_DIR = ".hydra"
HYDRA_OVERRIDES = Path(HYDRA_DIR) / "overrides.yaml"
HYDRA_CONFIG = Path(HYDRA_DIR) / "config.yaml"
# Files of a sweep's or a search's own folder (Hydra's multirun record, the sweep summary,
# Optuna's result): such a folder summarises runs and is not one.
SUMMARY_FILES = ("multirun.yaml", "summary.csv", "optimization_results.yaml")
CHECKPOINT_SUFFIXES = (".ckpt", ".pt", ".pth")
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
    fit_and_test_seconds: float | None  # None: written before test_seconds was recorded
    timed: bool  # test_metrics.json has time_to_val_acc (runs before it had none)
    time_to_headline: float | None  # seconds to HEADLINE_ACCURACY; None: never reached
    device: str
    curve: pd.DataFrame | None = field(default=None, repr=False)  # epoch, val_acc, elapsed
    # What was trained: Hydra's composed config minus seed and locations (None: no record).
    trained: str | None = field(default=None, repr=False)


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


def what_was_trained(config: dict) -> str | None:
    """The composed config as one comparable string, without the seed, the ignored keys and
    path values (a path given on the command line is shown as a placeholder too)."""
    if not config:
        return None
    flat = pd.json_normalize(config).to_dict(orient="records")[0]  # "model.net.widths": [...]
    kept = (
        portable(f"{key}={value}") if isinstance(value, str) else f"{key}={value!r}"
        for key, value in flat.items()
        if not is_ignored(key)
    )
    return "\n".join(sorted(kept))


def label_by_what_was_trained(runs: list[Run]) -> None:
    """Give runs that trained the same thing one configuration: the shortest command line."""
    labels: dict[str, str] = {}
    for run in runs:
        if run.trained is not None and run.from_command_line:
            known = labels.get(run.trained)
            if known is None or len(run.configuration) < len(known):
                labels[run.trained] = run.configuration
    for run in runs:
        if run.trained in labels:
            run.configuration = labels[run.trained]


def configuration_of(folder: Path, config: dict) -> tuple[str, bool]:
    """(label, whether it is the command line's overrides)."""
    overrides_file = folder / HYDRA_OVERRIDES
    if overrides_file.is_file():
        overrides = OmegaConf.to_container(OmegaConf.load(overrides_file)) or []
        kept = [portable(str(o)) for o in overrides if not is_ignored(str(o))]
        return (" ".join(kept) if kept else "default"), True
    return describe_config(config), False


def validation_curve(metrics_csv: Path) -> pd.DataFrame | None:
    """epoch, val_acc (and val_acc_tta, elapsed_seconds when logged) per validated epoch;
    None without val_acc."""
    if not metrics_csv.is_file():
        return None
    epochs = run_files.epoch_metrics(metrics_csv)
    if "val_acc" not in epochs or epochs["val_acc"].isna().all():
        return None
    columns = [c for c in ("epoch", "val_acc", "val_acc_tta", "elapsed_seconds") if c in epochs]
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


def device_label(test: dict) -> str:
    """What a run ran on, as far as it recorded: "cpu (AMD EPYC 7B13, 2 threads)", "cpu (2
    threads)" (runs before the processor was recorded), "cpu" (before the threads were),
    "cuda:0 (NVIDIA H200)" or "cuda:0"."""
    device = str(test.get("device", "?"))
    if isinstance(test.get("gpu_model"), str):
        return f"{device} ({test['gpu_model']})"
    threads = test.get("cpu_threads")
    if device != "cpu" or not isinstance(threads, int):
        return device
    processor = f"{test['cpu_model']}, " if isinstance(test.get("cpu_model"), str) else ""
    return f"cpu ({processor}{threads} thread{'s' if threads != 1 else ''})"


def load_config(path: Path) -> dict:
    """A saved config as plain containers (interpolations left as written); {} if absent."""
    return OmegaConf.to_container(OmegaConf.load(path)) if path.is_file() else {}


def read_configuration(folder: Path) -> tuple[dict, str, bool, str | None]:
    """A run's saved config, its label, whether that is its command line, and what it
    trained (for label_by_what_was_trained; None without Hydra's record)."""
    config = read_part(folder, run_files.CONFIG_YAML, load_config)
    configuration, from_command_line = read_part(
        folder, str(HYDRA_OVERRIDES), lambda _: configuration_of(folder, config)
    )
    hydra_config = read_part(folder, str(HYDRA_CONFIG), load_config)
    trained = what_was_trained(hydra_config) if from_command_line else None
    return config, configuration, from_command_line, trained


def read_run(folder: Path) -> Run:
    """One finished run; RunReadError when one of its files cannot be read."""
    test = read_part(folder, run_files.TEST_METRICS_JSON, run_files.read_json)
    if not isinstance(test, dict) or not isinstance(test.get("test_acc"), (int, float)):
        raise RunReadError(f"{run_files.TEST_METRICS_JSON}: no number under test_acc")

    config, configuration, from_command_line, trained = read_configuration(folder)
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
            fit_and_test_seconds=fit_and_test_seconds(test),
            timed=isinstance(times, dict),
            time_to_headline=optional_float(times.get(HEADLINE_ACCURACY))
            if isinstance(times, dict)
            else None,
            device=device_label(test),
            curve=curve,
            trained=trained,
        )
    except (ValueError, TypeError) as error:
        raise RunReadError(f"{run_files.TEST_METRICS_JSON}: {error}") from error


def fit_and_test_seconds(test: dict) -> float | None:
    """Seconds of fitting plus testing, from test_metrics.json; None when either is missing."""
    fit, tested = optional_float(test.get("fit_seconds")), optional_float(test.get("test_seconds"))
    return fit + tested if fit is not None and tested is not None else None


def is_run_folder(folder: Path, root: Path) -> bool:
    """A folder with config.yaml that is neither Hydra's bookkeeping nor a sweep's summary."""
    inside = folder.relative_to(root).parts if folder != root else ()
    if any(part.startswith(HYDRA_DIR) for part in inside):  # .hydra/, .hydra/resumed-<time>/
        return False
    return not any((folder / name).is_file() for name in SUMMARY_FILES)


def run_folders(folders: list[Path]) -> Iterator[Path]:
    """Every run folder (finished or not) below the folders, in the order given, once
    however the folders overlap; FileNotFoundError for one that is not a folder."""
    for folder in folders:
        if not folder.is_dir():
            raise FileNotFoundError(f"'{folder}' is not a folder: pass run or sweep folders.")
    return run_files.once_each(
        config_file.parent
        for folder in folders
        for config_file in sorted(folder.rglob(run_files.CONFIG_YAML))
        if is_run_folder(config_file.parent, folder)
    )


def find_runs(folders: list[Path]) -> tuple[list[Run], list[Path], list[str]]:
    """Finished runs under the folders (in the order given), unfinished run folders, and one
    line per folder that could not be read."""
    finished, unfinished, problems = [], [], []
    for run_folder in run_folders(folders):
        if not (run_folder / run_files.TEST_METRICS_JSON).is_file():
            unfinished.append(run_folder)
            continue
        try:
            finished.append(read_run(run_folder))
        except RunReadError as error:
            problems.append(f"{run_folder}: {error}")
    label_by_what_was_trained(finished)
    return finished, unfinished, problems
