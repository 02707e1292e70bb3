"""Progress as a redrawn bar in a terminal, and as one line per epoch in a log file or CI."""

import sys
import time
from typing import Any, TextIO

import lightning as L
from lightning.pytorch.callbacks import ProgressBar, TQDMProgressBar

from fmnist_lightning.training.callbacks import is_logging_step


class EpochLines(ProgressBar):
    """One line per training epoch, e.g. ``epoch 2/10  step 750  lr 0.0011  val_acc 0.87  12.3 s``.
    A ProgressBar, so that Lightning adds no bar of its own. Validation's metrics are left out
    on an epoch that did not validate: Lightning still holds the last ones."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self.stream = stream  # None: sys.stdout when writing (pytest swaps it)
        self.enabled = True
        self._validation_names: set[str] = set()

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_started, self._validated = time.perf_counter(), False

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._names_before_validation = set(trainer.callback_metrics)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._validation_names |= set(trainer.callback_metrics) - self._names_before_validation
        self._validated = not trainer.sanity_checking  # the sanity check runs before any epoch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.enabled:  # ProgressBar.setup disables it on ranks other than 0
            return
        total = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        parts = [f"epoch {trainer.current_epoch + 1}{total}", f"step {trainer.global_step}"]
        if trainer.optimizers:  # the rate now: LearningRateMonitor's lr-* is the epoch start's
            parts.append(f"lr {metric_text(trainer.optimizers[0].param_groups[0]['lr'])}")
        metrics = trainer.callback_metrics
        stale = set() if self._validated else self._validation_names
        for name, value in sorted(metrics.items()):
            # A value logged per step and per epoch is there three times: keep the epoch's.
            left_out = name.endswith("_step") or f"{name}_epoch" in metrics or name in stale
            if not (left_out or name.startswith("lr-")) and (text := metric_text(value)):
                parts.append(f"{name} {text}")
        parts.append(f"{time.perf_counter() - self._epoch_started:.1f} s")
        print("  ".join(parts), file=self.stream or sys.stdout, flush=True)


def metric_text(value: Any) -> str | None:
    """4 significant digits (nan and inf as such); None for what is not one number."""
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return None


class TerminalBar(TQDMProgressBar):
    """TQDM's bar with the loss of the last logging step: on the bar, Lightning would read the
    step loss back from the device every step."""

    _loss: float | None = None

    def on_train_batch_end(self, trainer: L.Trainer, module: Any, outputs: Any, *args: Any) -> None:
        if is_logging_step(trainer):
            self._loss = float(outputs["loss"] if isinstance(outputs, dict) else outputs)
        super().on_train_batch_end(trainer, module, outputs, *args)

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        return metrics if self._loss is None else {**metrics, "train_loss": self._loss}


def progress_for_output(refresh_rate: int = 20, stream: TextIO | None = None) -> ProgressBar:
    terminal = (stream or sys.stdout).isatty()
    return TerminalBar(refresh_rate=refresh_rate) if terminal else EpochLines()
