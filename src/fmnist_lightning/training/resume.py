"""What resuming does to the run folder: metrics.csv rewound to the checkpoint, the best
checkpoints checked before anything changes, the checkpoints' paths re-rooted onto the folder.

The run folder and the settings that a resumed run continues with are ``config.resume``'s.
The pieces that make a resumed run continue exactly:
``callbacks.interrupt.GracefulInterrupt`` (``last.ckpt`` on Ctrl-C/SIGTERM),
``callbacks.random_state.RandomState`` (RNG states in checkpoints),
``loggers.AppendingCSVLogger`` (metrics.csv appended to) and ``run_folder`` (one folder per run).
The checkpoints of a copied or moved run name files of the folder where they were written;
:class:`RelocatedCheckpoints` re-roots them, so a resumed run reads and writes only there.
"""

import os
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig

from fmnist_lightning.analysis import run_files
from fmnist_lightning.config.resume import rerooted
from fmnist_lightning.models.checkpoint_file import CheckpointError, read_checkpoint
from fmnist_lightning.training.loggers import drop_rows_from


def logging_step(checkpoint: dict[str, Any]) -> int:
    """The step that a run resumed from ``checkpoint`` logs first (metrics.csv's ``step``)."""
    loops = checkpoint.get("loops") or {}
    epoch_loop = (loops.get("fit_loop") or {}).get("epoch_loop.state_dict") or {}
    return int(epoch_loop.get("_batches_that_stepped", checkpoint.get("global_step", 0)))


def rewind_run_folder(run_dir: Path, checkpoint: dict[str, Any]) -> None:
    """Make a resumed run's folder agree with its checkpoint: the rows of metrics.csv logged
    after it (by a crashed or killed run, or the test of a finished one) are dropped, as the
    resumed run logs those steps again."""
    drop_rows_from(run_dir / run_files.METRICS_CSV, logging_step(checkpoint))


def relocate_checkpoint_states(checkpoint: dict[str, Any], checkpoint_dir: Path) -> None:
    """Re-root the callback states of ``checkpoint`` that hold a ``dirpath`` (ModelCheckpoint's:
    its best and last files, as absolute paths) onto ``checkpoint_dir``, where the run's
    checkpoints are now; Lightning would read, replace and delete the files of the old folder."""
    new = os.path.realpath(checkpoint_dir)  # as ModelCheckpoint keeps its own dirpath
    states = checkpoint.get("callbacks") or {}
    for key, state in states.items():
        if isinstance(state, dict) and isinstance(state.get("dirpath"), str):
            states[key] = rerooted(state, state["dirpath"].rstrip(os.sep), new)


class RelocatedCheckpoints(L.Callback):
    """For a resumed run: the checkpoint's ModelCheckpoint states name files of the run's
    checkpoint folder, wherever the run folder is now (Lightning restores every callback's
    state after all their ``on_load_checkpoint`` hooks)."""

    def __init__(self, checkpoint_dir: Path) -> None:
        self.checkpoint_dir = checkpoint_dir

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        relocate_checkpoint_states(checkpoint, self.checkpoint_dir)


def resume_callbacks(cfg: DictConfig) -> list[L.Callback]:
    """The callbacks a resumed run adds to its own (none for a fresh run)."""
    return [RelocatedCheckpoints(Path(cfg.ckpt_path).parent)] if cfg.get("resume") else []


def check_best_checkpoints(checkpoint: dict[str, Any], checkpoint_dir: Path, run_dir: str) -> None:
    """Read the best checkpoints that the ModelCheckpoint states of a resumed run's
    ``checkpoint`` name (in ``checkpoint_dir``): the run tests one when training ends, so a
    missing or damaged file stops it now, before anything in the folder changes."""
    relocate_checkpoint_states(checkpoint, checkpoint_dir)
    for state in (checkpoint.get("callbacks") or {}).values():
        best = state.get("best_model_path") if isinstance(state, dict) else None
        if not best or not state.get("monitor"):  # last.ckpt's own state; no best saved yet
            continue
        try:
            read_checkpoint(best)
        except CheckpointError as error:
            what = "cannot be read (it may be truncated)" if Path(best).is_file() else "is missing"
            raise CheckpointError(
                f"resume={run_dir}: this run's best checkpoint '{best}' {what}, and a resumed run "
                "tests it when training ends; nothing was changed. Put the file back (from a "
                "copy of the run) and resume again, or start a new run."
            ) from error


def starting_checkpoint(cfg: DictConfig) -> dict[str, Any] | None:
    """The checkpoint a run continues from (``ckpt_path``, which ``resume=`` sets too), read
    and checked by ``read_checkpoint`` before Lightning reads it, and for a resume the best
    checkpoint it names; None for a fresh run.

    A missing file, a file that is not a checkpoint of this project, or one whose
    hyperparameters are not plain data stops the run here with a CheckpointError.
    """
    ckpt_path = cfg.get("ckpt_path")
    if not ckpt_path:
        return None
    checkpoint = read_checkpoint(ckpt_path)
    if cfg.get("resume"):
        check_best_checkpoints(checkpoint, Path(ckpt_path).parent, cfg.resume)
    return checkpoint
