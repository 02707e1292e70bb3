"""Ways a run can stop early, each turned into one clear message and an exit code.

``train.train`` raises a :class:`RunStopped` subclass; the command line prints its message
(no stack trace) and exits with its ``exit_code``:

* :class:`TrainingInterrupted`: Ctrl-C or SIGTERM, at any point of the run
  (``callbacks.interrupt.GracefulInterrupt``: a checkpoint is saved when training stopped);
  resume with ``resume=RUN_DIR``. Exit code 128 + signal number (130 for SIGINT, 143 for
  SIGTERM), the shell convention for "stopped by a signal", so scripts and schedulers see
  the run did not finish.
* :class:`NonFiniteLoss`: the training loss became NaN or infinite
  (``callbacks.finite_loss.StopOnNonFiniteLoss``; exit code 1).
* :class:`OutOfMemory`: the GPU or host ran out of memory (exit code 1).
* :class:`TrainerSettingsRefused`: Lightning refused a trainer setting (``builders.build_trainer``;
  exit code 1).
* :class:`CheckpointNotSaved`: a checkpoint (or metrics.csv, test_metrics.json) could not be
  written, the disk full say (``output_files.write_atomically``: the earlier files stay
  intact; exit code 1).
"""

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

from fmnist_lightning.inference.output_files import OutputFileError
from fmnist_lightning.training.callbacks.interrupt import GracefulInterrupt


class RunStopped(RuntimeError):
    """A run that stopped before the end, for a reason the message explains."""

    exit_code = 1


class TrainingInterrupted(RunStopped):
    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


class NonFiniteLoss(RunStopped):
    pass


class OutOfMemory(RunStopped):
    pass


class CheckpointNotSaved(RunStopped):
    pass


class TrainerSettingsRefused(RunStopped, ValueError):
    """Lightning's Trainer refused a combination of the trainer settings."""


def _interrupt_callback(trainer: L.Trainer) -> GracefulInterrupt | None:
    return next((c for c in trainer.callbacks if isinstance(c, GracefulInterrupt)), None)


def _kept_checkpoint_sentence(trainer: L.Trainer) -> str:
    interrupt = _interrupt_callback(trainer)
    path = interrupt.path.resolve() if interrupt and interrupt.path.is_file() else None
    if path is None:
        return "No checkpoint had been written yet."
    return f"The last good checkpoint is kept: {path}"


def non_finite_loss_message(trainer: L.Trainer, loss: float) -> str:
    optimizer = trainer.optimizers[0] if trainer.optimizers else None
    lr = optimizer.param_groups[0]["lr"] if optimizer else math.nan
    return (
        f"Training stopped at epoch {trainer.current_epoch}, step {trainer.global_step}: the "
        f"training loss became {loss} (learning rate at that step: {lr:.3g}).\n"
        f"{_kept_checkpoint_sentence(trainer)}\n"
        "What to do: start a new run with a lower learning rate (e.g. optimizer.lr=<a tenth of "
        "the current value>); check the data (data.root, data.mean, data.std); if you trained "
        "in reduced precision, try trainer.precision=32-true."
    )


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA OOM, a failed host allocation, or Python's MemoryError."""
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def out_of_memory_message(error: BaseException, key: str, batch_size: int, stage: str) -> str:
    """``key``: the batch-size setting in use (data.batch_size or data.eval_batch_size)."""
    on_gpu = isinstance(error, torch.OutOfMemoryError) or "cuda" in str(error).lower()
    detail = (str(error).strip().splitlines() or [""])[0][:200]
    gpu_tip = " On a GPU, data.on_device=false keeps the dataset in host memory." if on_gpu else ""
    return (
        f"Ran out of {'GPU' if on_gpu else 'host'} memory during {stage} with {key}={batch_size} "
        f"({type(error).__name__}: {detail}).\n"
        f"What to do: use a smaller batch, e.g. {key}={max(batch_size // 2, 1)} (validation "
        f"and testing use data.eval_batch_size), or free the memory that other processes "
        f"use.{gpu_tip}"
    )


def checkpoint_not_saved_message(error: OutputFileError, trainer: L.Trainer, run_dir: Path) -> str:
    """One line: the file and size that could not be written, what is kept, how to go on."""
    interrupt = _interrupt_callback(trainer)
    go_on = (
        "The checkpoints written before are intact. Free some space, then continue the run: "
        + resume_command(run_dir)
        if interrupt and interrupt.path.is_file()
        else "No checkpoint had been written yet. Free some space, then start the run again."
    )
    where = f"epoch {trainer.current_epoch}, step {trainer.global_step}"
    return f"Run stopped at {where}: {error}. {go_on}"


def hydra_value(text: str) -> str:
    """``text`` as a value of a Hydra override: quoted where the override grammar needs it."""
    if re.fullmatch(r"[\w/.~+@:%-]+", text, flags=re.ASCII):
        return text
    return "'" + text.replace("'", "\\'") + "'"


def resume_command(run_dir: Path) -> str:
    """The command that continues the run in ``run_dir``, quoted for a POSIX shell."""
    return "python -m fmnist_lightning.train " + shlex.quote(
        f"resume={hydra_value(str(run_dir.resolve()))}"
    )


def interrupted_message(
    signum: int, interrupt: GracefulInterrupt | None, trainer: L.Trainer, run_dir: Path
) -> str:
    """What stopped, what was saved (or kept), and the command to go on."""
    name = signal.Signals(signum).name + (" (Ctrl-C)" if signum == signal.SIGINT else "")
    where = f"at epoch {trainer.current_epoch}, step {trainer.global_step}"
    stage = interrupt.stage if interrupt else "training"
    last = interrupt.path if interrupt else None
    if interrupt and interrupt.saved:
        head = (
            f"Training interrupted by {name} {where}. Checkpoint saved: {interrupt.saved.resolve()}"
        )
    elif interrupt and interrupt.aborted:
        head = f"Run stopped at once by a second Ctrl-C during {stage} {where}; nothing was saved."
    elif interrupt and interrupt.after_training:
        head = (
            f"Run interrupted by {name} during {stage}, after training ({where}); no checkpoint "
            f"was written, so {interrupt.path.name} keeps the weights that training ended with."
        )
    else:
        head = f"Run interrupted by {name} during {stage} {where}; nothing was saved."
    if last is not None and last.is_file():
        return f"{head}\nTo continue this run in the same folder:\n  {resume_command(run_dir)}"
    return f"{head}\nNo checkpoint of this run exists yet: start the run again."


@contextmanager
def explain_training_faults(trainer: L.Trainer, run_dir: Path, data: Any) -> Iterator[None]:
    """Handle Ctrl-C and SIGTERM while the block runs (``GracefulInterrupt``), and turn an
    interruption, an out-of-memory error or a checkpoint that could not be written into a
    RunStopped; ``data``: the data config."""
    interrupt = _interrupt_callback(trainer)
    try:
        with interrupt.handling_signals(trainer) if interrupt else nullcontext():
            yield
    # Lightning raises SIGTERMException on SIGTERM, and on Ctrl-C through GracefulInterrupt.
    except SIGTERMException as stop:
        signum = (interrupt and interrupt.signum) or signal.SIGTERM
        message = interrupted_message(signum, interrupt, trainer, run_dir)
        raise TrainingInterrupted(message, signum) from stop
    # Checkpoints, metrics.csv rewound for a resume, test_metrics.json: a resume writes each again.
    except OutputFileError as error:
        raise CheckpointNotSaved(checkpoint_not_saved_message(error, trainer, run_dir)) from error
    except (RuntimeError, MemoryError) as error:
        if isinstance(error, RunStopped) or not is_out_of_memory(error):
            raise
        # Testing runs batches of data.eval_batch_size (Lightning has reset the stage by now).
        testing = trainer.state.fn == "test"
        key = "eval_batch_size" if testing else "batch_size"
        stage = "testing" if testing else "training"
        message = out_of_memory_message(error, f"data.{key}", data[key], stage)
        raise OutOfMemory(message) from error
