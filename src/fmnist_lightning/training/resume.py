"""What resuming does to the run folder: metrics.csv rewound to the checkpoint, the best
checkpoints checked before anything changes, the checkpoints' paths re-rooted onto the folder.
Only a run with ``ckpt_path`` (or ``resume=``) imports this module."""

import csv
import io
import os
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import LambdaCallback
from omegaconf import DictConfig

from fmnist_lightning.analysis import run_files
from fmnist_lightning.config.resume import rerooted
from fmnist_lightning.inference.output_files import write_atomically
from fmnist_lightning.models.checkpoint_file import CheckpointError, read_checkpoint


def rewind_run_folder(run_dir: Path, checkpoint: dict[str, Any]) -> int:
    """Drop the rows of metrics.csv logged after ``checkpoint`` (by a crashed or killed run,
    or the test of a finished one): the resumed run logs those steps again. How many."""
    loops = checkpoint.get("loops") or {}
    epoch_loop = (loops.get("fit_loop") or {}).get("epoch_loop.state_dict") or {}
    step = int(epoch_loop.get("_batches_that_stepped", checkpoint.get("global_step", 0)))
    metrics_csv = run_dir / run_files.METRICS_CSV
    if not metrics_csv.is_file():
        return 0
    with open(metrics_csv, newline="") as file:
        rows = list(reader := csv.DictReader(file))
    kept = [row for row in rows if not row.get("step") or int(float(row["step"])) < step]
    if len(kept) < len(rows):
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=reader.fieldnames or [])  # as Lightning writes
        writer.writeheader()
        writer.writerows(kept)
        write_atomically(metrics_csv, text.getvalue().encode())
    return len(rows) - len(kept)


def relocate_checkpoint_states(checkpoint: dict[str, Any], checkpoint_dir: Path) -> None:
    """Re-root ModelCheckpoint's states (absolute paths) onto ``checkpoint_dir``, where a copied
    or moved run's checkpoints are now: Lightning would read, replace and delete the old ones."""
    new = os.path.realpath(checkpoint_dir)  # as ModelCheckpoint keeps its own dirpath
    states = checkpoint.get("callbacks") or {}
    for key, state in states.items():
        if isinstance(state, dict) and isinstance(state.get("dirpath"), str):
            states[key] = rerooted(state, state["dirpath"].rstrip(os.sep), new)


def starting_checkpoint(cfg: DictConfig) -> tuple[dict[str, Any], list[L.Callback]]:
    """The checkpoint a run continues from (``ckpt_path``, which ``resume=`` sets too), and the
    callbacks a resumed run adds. A resumed run tests the best checkpoint its ModelCheckpoint
    states name when training ends: a missing or damaged one stops it now, before the folder
    changes."""
    checkpoint = read_checkpoint(cfg.ckpt_path)
    if not cfg.get("resume"):
        return checkpoint, []
    folder = Path(cfg.ckpt_path).parent
    relocate_checkpoint_states(checkpoint, folder)
    for state in (checkpoint.get("callbacks") or {}).values():
        best = state.get("best_model_path") if isinstance(state, dict) else None
        if not best or not state.get("monitor"):  # last.ckpt's own state; no best saved yet
            continue
        try:
            read_checkpoint(best)
        except CheckpointError as error:
            what = "cannot be read (it may be truncated)" if Path(best).is_file() else "is missing"
            raise CheckpointError(
                f"resume={cfg.resume}: this run's best checkpoint '{best}' {what} (nothing was changed); "
                "put it back from a copy of the run and resume again, or start a new run"
            ) from error

    # Lightning restores every callback's state after all their on_load_checkpoint hooks.
    def relocate(trainer: L.Trainer, module: L.LightningModule, loaded: dict) -> None:
        relocate_checkpoint_states(loaded, folder)

    return checkpoint, [LambdaCallback(on_load_checkpoint=relocate)]
