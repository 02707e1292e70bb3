"""Ways a run stops early, each one message (``errors.Stopped``): interrupted, exit 128 +
signal; a NaN loss, out of memory, a file not written, trainer settings Lightning refused: 1."""

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

OUT_OF_MEMORY = re.compile("out of memory|can't allocate memory")  # CUDA's, a host allocation
NO_CHECKPOINT = "No checkpoint had been written yet"


# Caught by the search: a trial stopped by these failed for its own values, the search goes on.
class NonFiniteLoss(Stopped):
    """A NaN or infinite training loss (StopOnNonFiniteLoss)."""


class OutOfMemory(Stopped):
    """GPU or host memory ran out."""


class TrainingInterrupted(Stopped):
    """Ctrl-C or SIGTERM (exit 128 + signal); the search stops on it."""


def _interrupt(trainer: L.Trainer) -> GracefulInterrupt | None:
    return next((c for c in trainer.callbacks if isinstance(c, GracefulInterrupt)), None)


def _where(trainer: L.Trainer) -> str:
    return f"epoch {trainer.current_epoch}, step {trainer.global_step}"


def _kept_checkpoint(trainer: L.Trainer) -> Path | None:
    path = getattr(_interrupt(trainer), "path", None)
    return path if path and path.is_file() else None


def _what_next(trainer: L.Trainer, run_dir: Path) -> str:
    """The advice that ends the message of a run stopped short: resume it, or start it again."""
    if _kept_checkpoint(trainer):
        return f"To continue this run in the same folder: {resume_command(run_dir)}"
    return f"{NO_CHECKPOINT}: start the run again."


def non_finite_loss_message(trainer: L.Trainer, loss: float) -> str:
    lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else math.nan
    path = _kept_checkpoint(trainer)
    kept = f"The last good checkpoint is kept: {path}" if path else f"{NO_CHECKPOINT}."
    return (
        f"Training stopped at {_where(trainer)}: the training loss became {loss} (learning rate {lr:.3g}).\n"
        f"{kept}\nWhat to do: a new run with a lower optimizer.lr, or trainer.precision=32-true."
    )


def resume_command(run_dir: Path) -> str:
    """Quoted for a POSIX shell, and the path for Hydra's override grammar where it needs it."""
    path = str(run_dir.resolve())
    if not re.fullmatch(r"[\w/.~+@:%-]+", path, flags=re.ASCII):
        path = "'" + path.replace("'", "\\'") + "'"
    return "python -m fmnist_lightning.train " + shlex.quote(f"resume={path}")


def interrupted_message(signum: int, trainer: L.Trainer, run_dir: Path) -> str:
    interrupt = _interrupt(trainer)
    name = signal.Signals(signum).name + (" (Ctrl-C)" if signum == signal.SIGINT else "")
    where, stage = f"at {_where(trainer)}", interrupt.stage if interrupt else "training"
    if interrupt and interrupt.saved:
        head = f"Training interrupted by {name} {where}. Checkpoint saved: {interrupt.saved}"
    elif interrupt and interrupt.aborted:
        head = f"Run stopped at once by a second Ctrl-C during {stage} {where}; nothing was saved."
    elif stage in AFTER_TRAINING:
        head = f"Run interrupted by {name} during {stage}, after training ({where}); {interrupt.path.name} holds training's end."
    else:
        head = f"Run interrupted by {name} during {stage} {where}; nothing was saved."
    return f"{head}\n{_what_next(trainer, run_dir)}"


@contextmanager
def explain_training_faults(trainer: L.Trainer, run_dir: Path, data: Any) -> Iterator[None]:
    """Ctrl-C and SIGTERM handled while the block runs; an interruption, running out of memory
    or a file not written become a Stopped error."""
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
        raise Stopped(
            f"Run stopped at {_where(trainer)}: {error}. Free some space. {_what_next(trainer, run_dir)}"
        ) from error
    except (RuntimeError, MemoryError) as error:
        text = str(error).lower()
        known = isinstance(error, (torch.OutOfMemoryError, MemoryError))
        if isinstance(error, Stopped) or not (known or OUT_OF_MEMORY.search(text)):
            raise
        # Testing runs batches of data.eval_batch_size (Lightning has reset the stage by now).
        stage = "testing" if trainer.state.fn == "test" else "training"
        key = "data.eval_batch_size" if stage == "testing" else "data.batch_size"
        size = data[key.removeprefix("data.")]
        on_gpu = isinstance(error, torch.OutOfMemoryError) or "cuda" in text
        detail = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:200]}"
        tip = "data.on_device=false (the dataset in host memory)" if on_gpu else "free some memory"
        raise OutOfMemory(
            f"Ran out of {'GPU' if on_gpu else 'host'} memory during {stage} with {key}={size} ({detail}).\n"
            f"What to do: a smaller batch, e.g. {key}={max(size // 2, 1)}, or {tip}."
        ) from error
