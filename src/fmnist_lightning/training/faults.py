"""Ways a run can stop early, each one message and an exit status (``errors.Stopped``, printed
without "Error: "): interrupted (Ctrl-C, SIGTERM; ``callbacks.interrupt``) 128 + signal; a NaN
loss (``callbacks.finite_loss``), out of memory, a checkpoint or run file not written
(``output_files.write_atomically``: the earlier files stay), trainer settings Lightning
refused (``builders.build_trainer``): 1."""

import math
import re
import shlex
import signal
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

from fmnist_lightning.errors import Stopped
from fmnist_lightning.inference.output_files import OutputFileError
from fmnist_lightning.training.callbacks.interrupt import AFTER_TRAINING, GracefulInterrupt


class RunStopped(Stopped):
    """A training run that stopped early (a file not written, or one of the subclasses)."""


# Caught by the search: a trial stopped by these failed for its own values, the search goes on.
class NonFiniteLoss(RunStopped):
    pass


class OutOfMemory(RunStopped):
    pass


class TrainingInterrupted(RunStopped):  # the search stops on it (signum: exit 128 + signal)
    pass


class TrainerSettingsRefused(RunStopped, ValueError):
    """Lightning's Trainer refused a combination of the trainer settings."""


def _interrupt(trainer: L.Trainer) -> GracefulInterrupt | None:
    return next((c for c in trainer.callbacks if isinstance(c, GracefulInterrupt)), None)


def _kept_checkpoint(trainer: L.Trainer) -> Path | None:
    interrupt = _interrupt(trainer)
    return interrupt.path.resolve() if interrupt and interrupt.path.is_file() else None


def non_finite_loss_message(trainer: L.Trainer, loss: float) -> str:
    optimizer = trainer.optimizers[0] if trainer.optimizers else None
    lr = optimizer.param_groups[0]["lr"] if optimizer else math.nan
    path = _kept_checkpoint(trainer)
    kept = (
        f"The last good checkpoint is kept: {path}"
        if path
        else "No checkpoint had been written yet."
    )
    return (
        f"Training stopped at epoch {trainer.current_epoch}, step {trainer.global_step}: the "
        f"training loss became {loss} (learning rate at that step: {lr:.3g}).\n{kept}\n"
        "What to do: start a new run with a lower learning rate (e.g. optimizer.lr=<a tenth of "
        "the current value>); check the data (data.root, data.mean, data.std); if you trained "
        "in reduced precision, try trainer.precision=32-true."
    )


def resume_command(run_dir: Path) -> str:
    """The command that continues the run in ``run_dir``, quoted for a POSIX shell (and the
    path for Hydra's override grammar where it needs it)."""
    path = str(run_dir.resolve())
    if not re.fullmatch(r"[\w/.~+@:%-]+", path, flags=re.ASCII):
        path = "'" + path.replace("'", "\\'") + "'"
    return "python -m fmnist_lightning.train " + shlex.quote(f"resume={path}")


def interrupted_message(signum: int, trainer: L.Trainer, run_dir: Path) -> str:
    """What stopped, what was saved (or kept), and the command to go on."""
    interrupt = _interrupt(trainer)
    name = signal.Signals(signum).name + (" (Ctrl-C)" if signum == signal.SIGINT else "")
    where = f"at epoch {trainer.current_epoch}, step {trainer.global_step}"
    stage = interrupt.stage if interrupt else "training"
    if interrupt and interrupt.saved:
        head = (
            f"Training interrupted by {name} {where}. Checkpoint saved: {interrupt.saved.resolve()}"
        )
    elif interrupt and interrupt.aborted:
        head = f"Run stopped at once by a second Ctrl-C during {stage} {where}; nothing was saved."
    elif interrupt and interrupt.stage in AFTER_TRAINING:
        head = (
            f"Run interrupted by {name} during {stage}, after training ({where}); no checkpoint "
            f"was written, so {interrupt.path.name} keeps the weights that training ended with."
        )
    else:
        head = f"Run interrupted by {name} during {stage} {where}; nothing was saved."
    if _kept_checkpoint(trainer):
        return f"{head}\nTo continue this run in the same folder:\n  {resume_command(run_dir)}"
    return f"{head}\nNo checkpoint of this run exists yet: start the run again."


@contextmanager
def explain_training_faults(trainer: L.Trainer, run_dir: Path, data: Any) -> Iterator[None]:
    """Handle Ctrl-C and SIGTERM while the block runs (``GracefulInterrupt``), and turn an
    interruption, running out of memory or a file not written into a RunStopped; ``data``: the
    data config."""
    interrupt = _interrupt(trainer)
    try:
        with interrupt.handling_signals(trainer) if interrupt else nullcontext():
            yield
    # Lightning raises SIGTERMException on SIGTERM, and on Ctrl-C through GracefulInterrupt.
    except SIGTERMException as stop:
        signum = (interrupt and interrupt.signum) or signal.SIGTERM
        raise TrainingInterrupted(interrupted_message(signum, trainer, run_dir), signum) from stop
    # Checkpoints, metrics.csv rewound for a resume, test_metrics.json: a resume writes each again.
    except OutputFileError as error:
        go_on = (
            "The checkpoints written before are intact. Free some space, then continue the run: "
            + resume_command(run_dir)
            if _kept_checkpoint(trainer)
            else "No checkpoint had been written yet. Free some space, then start the run again."
        )
        where = f"epoch {trainer.current_epoch}, step {trainer.global_step}"
        raise RunStopped(f"Run stopped at {where}: {error}. {go_on}") from error
    except (RuntimeError, MemoryError) as error:  # CUDA's, a host allocation, Python's
        text = str(error).lower()
        if isinstance(error, Stopped) or not (
            isinstance(error, (torch.OutOfMemoryError, MemoryError))
            or "out of memory" in text
            or "can't allocate memory" in text
        ):
            raise
        # Testing runs batches of data.eval_batch_size (Lightning has reset the stage by now).
        testing = trainer.state.fn == "test"
        key = "data.eval_batch_size" if testing else "data.batch_size"
        size = data[key.removeprefix("data.")]
        on_gpu = isinstance(error, torch.OutOfMemoryError) or "cuda" in text
        detail = (str(error).strip().splitlines() or [""])[0][:200]
        tip = " On a GPU, data.on_device=false keeps the dataset in host memory." if on_gpu else ""
        raise OutOfMemory(
            f"Ran out of {'GPU' if on_gpu else 'host'} memory during "
            f"{'testing' if testing else 'training'} with {key}={size} "
            f"({type(error).__name__}: {detail}).\n"
            f"What to do: use a smaller batch, e.g. {key}={max(size // 2, 1)} (validation "
            f"and testing use data.eval_batch_size), or free the memory that other processes "
            f"use.{tip}"
        ) from error
