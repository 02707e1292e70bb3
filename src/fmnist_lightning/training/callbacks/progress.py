"""Progress as a redrawn bar in a terminal, and as one line per epoch in a log file or CI."""

import math
import sys
import time
from collections.abc import Collection
from typing import Any, TextIO

import lightning as L
from lightning.pytorch.callbacks import ProgressBar, TQDMProgressBar

from fmnist_lightning.training.callbacks.logging_steps import is_logging_step


class EpochLines(ProgressBar):
    """One line at the end of each training epoch: epoch, step, the epoch's metrics, seconds.

    A ProgressBar, so that Lightning adds no bar of its own; rank zero writes, as for a bar.
    Step-level values (``*_step``) are left out: the line is about the epoch. So are the
    metrics validation logs, on an epoch that did not validate
    (``trainer.check_val_every_n_epoch`` > 1): Lightning still holds the last ones.

        epoch 2/10  step 750  lr 0.0011  train_acc 0.86  train_loss_epoch 0.41  val_acc 0.87  val_loss 0.35  12.3 s
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self.stream = stream  # None: sys.stdout at the time of writing (pytest swaps it)
        self._enabled = True
        self._epoch_started = time.perf_counter()
        self._validated = False
        self._names_before_validation: set[str] = set()
        self._validation_names: set[str] = set()  # the metrics that validation has logged

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_started = time.perf_counter()
        self._validated = False

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._names_before_validation = set(trainer.callback_metrics)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._validation_names |= set(trainer.callback_metrics) - self._names_before_validation
        self._validated = self._validated or not trainer.sanity_checking

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._enabled and trainer.is_global_zero:
            seconds = time.perf_counter() - self._epoch_started
            stale = set() if self._validated else self._validation_names
            line = epoch_line(trainer, seconds, leave_out=stale)
            print(line, file=self.stream or sys.stdout, flush=True)


def metric_text(value: Any) -> str | None:
    """A metric for the line: 4 significant digits; None for what is not one number."""
    try:
        number = float(value)
    except (TypeError, ValueError):  # a tensor of several values, a string
        return None
    return f"{number:.4g}" if math.isfinite(number) else str(number)


def epoch_line(trainer: L.Trainer, seconds: float, leave_out: Collection[str] = ()) -> str:
    """``epoch 2/10  step 750  train_loss_epoch 0.41  ...  val_acc 0.87  12.3 s``, without the
    metrics named in ``leave_out``."""
    total = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
    parts = [f"epoch {trainer.current_epoch + 1}{total}", f"step {trainer.global_step}"]
    if trainer.optimizers:  # the rate now: LearningRateMonitor's lr-* is the epoch start's
        parts.append(f"lr {metric_text(trainer.optimizers[0].param_groups[0]['lr'])}")
    metrics = trainer.callback_metrics
    for name, value in sorted(metrics.items()):
        # A value logged per step and per epoch is there three times: keep the epoch's.
        step_value = name.endswith("_step") or f"{name}_epoch" in metrics or name.startswith("lr-")
        text = None if step_value or name in leave_out else metric_text(value)
        if text is not None:
            parts.append(f"{name} {text}")
    return "  ".join([*parts, f"{seconds:.1f} s"])


class TerminalBar(TQDMProgressBar):
    """TQDM's bar, with the training loss of the last logging step.

    The module does not put its step loss on the progress bar: Lightning would then read it
    back from the device after every step. This bar reads it at the logging steps only.
    """

    def __init__(self, refresh_rate: int = 1) -> None:
        super().__init__(refresh_rate=refresh_rate)
        self._loss: float | None = None

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        if is_logging_step(trainer):
            self._loss = float(outputs["loss"] if isinstance(outputs, dict) else outputs)
        super().on_train_batch_end(trainer, pl_module, outputs, batch, idx)

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        return metrics if self._loss is None else {**metrics, "train_loss": self._loss}


def progress_for_output(refresh_rate: int = 20, stream: TextIO | None = None) -> ProgressBar:
    """TerminalBar when ``stream`` (stdout, where the bar writes) is a terminal; else EpochLines."""
    stream = stream or sys.stdout
    if stream.isatty():
        return TerminalBar(refresh_rate=refresh_rate)
    return EpochLines()
