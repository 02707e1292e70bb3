"""The rules for trained runs used together: an ensemble's members, a distillation's teacher.

Distinct checkpoints with distinct weights, one normalisation and one list of classes, the
same train/val split where validation images are read, and what each cost to train."""

import hashlib
from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from filelock import FileLock, Timeout
from omegaconf import OmegaConf

from fmnist_lightning.analysis import run_files
from fmnist_lightning.errors import UsageError
from fmnist_lightning.models.module import FashionMNISTModule

# The hyperparameters that decide what a member's input and output mean.
SHARED_HPARAMS = ("mean", "std", "class_names")
# The data keys that decide which training images become validation images.
SPLIT_KEYS = ("val_fraction", "split_seed")


def data_split(data: Mapping[str, Any]) -> dict[str, Any]:
    """The split keys a data config sets."""
    return {key: data[key] for key in SPLIT_KEYS if data.get(key) is not None}


def run_split(run_dir: Path) -> dict[str, Any] | None:
    """The split keys of a run, from its config.yaml; None when it has no config.yaml."""
    if not (run_dir / run_files.CONFIG_YAML).is_file():
        return None
    return data_split(OmegaConf.load(run_dir / run_files.CONFIG_YAML).get("data", {}))


def distinct_checkpoints(paths: Sequence[str | Path], key: str) -> list[Path]:
    """The checkpoint of each run folder or .ckpt file of the setting ``key``, each once."""
    checkpoints = [run_files.run_checkpoint(Path(path)) for path in paths]
    if len({checkpoint.resolve() for checkpoint in checkpoints}) < len(checkpoints):
        raise UsageError(f"A checkpoint is listed twice in {key}={list(paths)}.")
    return checkpoints


def check_shared_split(runs: list[Path]) -> None:
    """Members validated together must share their train/val split, else validation images
    of one are training images of another."""
    splits = [run_split(run) for run in runs]
    if None in splits:  # which images it trained on is unknown
        unknown = runs[splits.index(None)]
        raise UsageError(f"No {run_files.CONFIG_YAML} in {unknown}; use it with split=test only.")
    if any(split != splits[0] for split in splits):
        seen = ", ".join(f"{run.name}: {split}" for run, split in zip(runs, splits, strict=True))
        why = f"The members were trained on different train/val splits ({seen})"
        raise UsageError(f"{why}; train them with one data.split_seed, or evaluate split=test.")


def check_members(modules: list[FashionMNISTModule], checkpoints: list[Path]) -> None:
    """Distinct weights (a run and its copy would be one model reported as an ensemble, its fit
    time doubled), one normalisation and one list of classes."""
    for (first, a), (second, b) in combinations(zip(checkpoints, modules, strict=True), 2):
        a, b = a.state_dict(), b.state_dict()
        if a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a):
            why = f"{second} holds the same weights as {first} (a copy of one run?)"
            raise UsageError(f"{why}; keep one and add a member trained with another seed.")
    check_shared_hparams(modules, checkpoints)


def check_shared_hparams(modules: list[FashionMNISTModule], names: Sequence[Any]) -> None:
    """One normalisation and one list of classes; ``names`` says whose each module is."""
    expected = modules[0].hparams
    for module, name in zip(modules[1:], names[1:], strict=True):
        for key in SHARED_HPARAMS:
            if module.hparams[key] != expected[key]:
                why = f"{name} has {key}={module.hparams[key]!r} but {names[0]}"
                raise UsageError(f"{why} has {expected[key]!r}; they must agree.")


def check_finished(run: Path) -> None:
    """A run that is still training (no test_metrics.json yet, or its folder locked by a
    resumed run) would change under its user's feet."""
    if not (run / run_files.TEST_METRICS_JSON).is_file():
        why = f"{run} has not finished training (no {run_files.TEST_METRICS_JSON})"
        raise UsageError(f"{why}; wait for it to end, or resume it to the end first.")
    if is_locked(run):
        raise UsageError(f"{run} is in use by a training process; wait for it to end.")


def is_locked(run: Path) -> bool:
    """Whether a training process holds the run folder's lock (training.run_folder's)."""
    if not (run / run_files.LOCK_FILE).is_file():
        return False
    try:
        with FileLock(run / run_files.LOCK_FILE, timeout=0):
            return False
    except Timeout:
        return True
    except PermissionError:  # a read-only copy of a run: nothing trains there
        return False


def fit_seconds(checkpoint: Path) -> float | None:
    """Seconds from the start of fitting to the end of the last epoch, from metrics.csv."""
    metrics_csv = run_files.run_dir_of(checkpoint) / run_files.METRICS_CSV
    epochs = run_files.epoch_metrics(metrics_csv) if metrics_csv.is_file() else pd.DataFrame()
    elapsed = epochs.get("elapsed_seconds", pd.Series()).dropna()
    return None if elapsed.empty else float(elapsed.iloc[-1])


def sha256(path: Path) -> str:
    """The file's SHA-256, hex: what identifies a checkpoint wherever it is copied."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
