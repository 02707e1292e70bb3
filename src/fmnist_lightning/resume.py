"""Interrupt and resume a run: one folder per run, checkpoints on Ctrl-C/SIGTERM, RNG state.

* ``resume=RUN_DIR`` (or ``resume=RUN_DIR/checkpoints/x.ckpt``, or ``ckpt_path=`` a checkpoint
  inside a run folder) makes Hydra's run folder that run's folder (``run_folder`` resolver),
  reloads the run's saved ``config.yaml`` and continues training from the checkpoint.
* A fresh run never writes into a folder that already holds a run (:func:`claim_run_dir`).
* Ctrl-C and SIGTERM save ``last.ckpt`` and stop cleanly: ``faults.GracefulInterrupt``.
* :class:`RandomState` stores the torch, CUDA, numpy and Python RNG states in checkpoints, so
  dropout after a resume draws the same numbers as a run that never stopped.
* :class:`AppendingCSVLogger` appends to the run's ``metrics.csv`` instead of deleting it.
"""

import csv
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from omegaconf import DictConfig, OmegaConf

try:
    import fcntl
except ImportError:  # Windows: run folders are not locked
    fcntl = None

from fmnist_lightning import runs
from fmnist_lightning.faults import RunStopped

LAST_CHECKPOINT = "last.ckpt"
# What a fresh run may find in its folder: Hydra's files, logs, and a config from an attempt
# that failed before training (bad data, bad config). Anything else is an earlier run's work.
FRESH_RUN_LEFTOVERS = (".hydra", ".lock", "*.log", runs.CONFIG_YAML)
# Settings that say where to resume from; they are not copied over the saved config.
RESUME_KEYS = ("resume", "ckpt_path")


class RunFolderError(RunStopped, ValueError):
    """A run folder that cannot be used as asked (already holds a run, or is not a run)."""


@dataclass(frozen=True)
class ResumePoint:
    run_dir: Path
    checkpoint: Path


def _is_run_folder(path: Path) -> bool:
    return (path / runs.CONFIG_YAML).is_file()


def resume_point(resume: str | None, ckpt_path: str | None) -> ResumePoint | None:
    """Where ``resume`` / ``ckpt_path`` point: a run folder and its checkpoint; None for a fresh run.

    ``ckpt_path`` outside a run folder is not a resume: a new run starts from that state.
    """
    if not resume:
        if ckpt_path and Path(ckpt_path).parent.name == runs.CHECKPOINT_DIR:
            run_dir = Path(ckpt_path).parent.parent
            if _is_run_folder(run_dir):
                return ResumePoint(run_dir, Path(ckpt_path))
        return None
    path = Path(resume)
    if path.is_dir():
        checkpoint = path / runs.CHECKPOINT_DIR / LAST_CHECKPOINT
        if not _is_run_folder(path) or not checkpoint.is_file():
            raise RunFolderError(
                f"resume={resume}: this folder holds no run to continue (expected "
                f"{runs.CONFIG_YAML} and {runs.CHECKPOINT_DIR}/{LAST_CHECKPOINT} in it). Pass the "
                "folder of a run that trained at least one epoch or was interrupted, e.g. "
                "resume=lightning_logs/runs/<run>, or a checkpoint: resume=<run>/checkpoints/<file>.ckpt"
            )
        return ResumePoint(path, checkpoint)
    if (
        path.is_file()
        and path.parent.name == runs.CHECKPOINT_DIR
        and _is_run_folder(path.parent.parent)
    ):
        return ResumePoint(path.parent.parent, path)
    if path.is_file():
        raise RunFolderError(
            f"resume={resume}: this checkpoint is not inside a run folder (<run>/checkpoints/), so "
            f"there is no run to continue. To start a new run from it use ckpt_path={resume}."
        )
    raise RunFolderError(
        f"resume={resume}: no such folder or file. Pass a run folder, e.g. "
        "resume=lightning_logs/runs/<run>, or one of its checkpoints."
    )


def _resume_point_or_none(resume: str | None, ckpt_path: str | None) -> ResumePoint | None:
    # Hydra resolves its run folder before the app runs and would print a stack trace; a bad
    # resume= gets a new folder here, and train() then stops with the clear error.
    try:
        return resume_point(resume, ckpt_path)
    except RunFolderError:
        return None


def run_folder(resume: str | None, ckpt_path: str | None, fresh: str) -> str:
    """Resolver for ``hydra.run.dir``: the resumed run's folder, else ``fresh`` (a new folder)."""
    point = _resume_point_or_none(resume, ckpt_path)
    return str(point.run_dir) if point else fresh


def hydra_subdir(resume: str | None, ckpt_path: str | None, stamp: str) -> str:
    """Resolver for ``hydra.output_subdir``: a resumed run keeps its original ``.hydra`` files."""
    return f".hydra/resumed-{stamp}" if _resume_point_or_none(resume, ckpt_path) else ".hydra"


def _command_line_overrides() -> list[str]:
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def config_to_run(cfg: DictConfig) -> DictConfig:
    """The config a run uses: as composed for a fresh run; for a resume, the run's saved config.

    Overrides typed next to ``resume=`` (``trainer.max_epochs=20``) are applied over the saved
    config; changing a config group (``optimizer=adam``) is refused.
    """
    point = resume_point(cfg.get("resume"), cfg.get("ckpt_path"))
    if point is None:
        return cfg
    saved = OmegaConf.load(point.run_dir / runs.CONFIG_YAML)
    for override in OverridesParser.create().parse_overrides(_command_line_overrides()):
        key = override.key_or_group
        if key in RESUME_KEYS or override.is_delete():
            continue
        if isinstance(OmegaConf.select(saved, key), DictConfig):
            raise RunFolderError(
                f"'{override.input_line}' changes a whole config group, which a resumed run "
                "cannot do (its weights and optimiser state belong to its saved settings). "
                "Start a new run for different settings."
            )
        OmegaConf.update(saved, key, override.value(), force_add=True)
    saved.resume = str(point.run_dir)
    saved.ckpt_path = str(point.checkpoint)
    saved.paths.run_dir = str(point.run_dir)
    return saved


def holds_a_run(run_dir: Path) -> list[str]:
    """Names of what an earlier run left in ``run_dir`` (empty: free for a fresh run)."""
    if not run_dir.is_dir():
        return []
    return sorted(
        entry.name + ("/" if entry.is_dir() else "")
        for entry in run_dir.iterdir()
        if not any(entry.match(pattern) for pattern in FRESH_RUN_LEFTOVERS)
    )


def check_run_dir(run_dir: Path, resuming: bool) -> None:
    """Refuse to start a fresh run in a folder that holds another run's results."""
    found = holds_a_run(run_dir)
    if found and not resuming:
        raise RunFolderError(
            f"The run folder '{run_dir}' already holds a run ({', '.join(found[:5])}). A new run "
            "never writes into an existing one. To continue that run: "
            f"python -m fmnist_lightning.train resume={run_dir}. To start a new run, leave "
            "paths.run_dir unset (every run gets a new folder) or choose an empty folder."
        )


@contextmanager
def claim_run_dir(run_dir: Path, resuming: bool, lock: bool = True) -> Iterator[None]:
    """Check the folder, and hold an exclusive lock on it while the run writes there.

    The lock (``fcntl.flock`` on ``.lock``) is released by the OS even if the process is
    killed, so a crashed run never blocks its resume. ``lock=False`` (DDP ranks other than
    0, which write nothing there) and Windows: no lock.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    if not lock or fcntl is None:
        yield
        return
    with open(run_dir / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise RunFolderError(
                f"The run folder '{run_dir}' is in use by another training process. Wait for "
                "it to finish, or start a new run in another folder."
            ) from error
        check_run_dir(run_dir, resuming)  # another process may have finished a run meanwhile
        yield


class RandomState(Callback):
    """Save the RNG states (torch, CUDA, numpy, Python) in checkpoints and restore them on resume.

    Restored at ``on_train_start``, after the sanity check and model set-up, so the first
    training step after a resume draws the same dropout masks as an uninterrupted run. Stored
    as tensors and plain lists, so checkpoints still load with ``weights_only=True``.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
        version, python_state, python_gauss = random.getstate()
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
            "numpy": [kind, keys.tolist(), pos, has_gauss, gauss],
            "python": [version, list(python_state), python_gauss],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        state, self._pending = self._pending, None
        if state is None:
            return
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
        version, python_state, python_gauss = state["python"]
        random.setstate((version, tuple(python_state), python_gauss))


class _AppendingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        # Lightning deletes an existing metrics.csv here; a resumed run appends to it instead,
        # under the columns it already has (new columns rewrite the header, as Lightning does).
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as file:
                self.metrics_keys = next(csv.reader(file), [])


class AppendingCSVLogger(CSVLogger):
    """Lightning's CSVLogger, except that it appends to an existing metrics.csv."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment
