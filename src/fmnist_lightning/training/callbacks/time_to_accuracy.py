"""Wall-clock time of fitting, per validation (``elapsed_seconds``) and to each accuracy.

Kept in the checkpoints, so a resumed run continues the count (the time between the last
checkpoint and a crash is not counted: that work is done again).
"""

import time
from collections.abc import Sequence
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

THRESHOLDS = (0.90, 0.92, 0.93, 0.94, 0.95)
HEADLINE = 0.93  # the threshold that every run prints at its end
# val_acc is a float32: 11,400 right of 12,000 is 0.94999999, which has reached 0.95.
TOLERANCE = 1e-6


def threshold_key(threshold: float) -> str:
    """0.9 → "0.90", 0.935 → "0.935"."""
    two_places = f"{threshold:.2f}"
    return two_places if float(two_places) == threshold else f"{threshold:g}"


def rounded(seconds: float | None, places: int = 1) -> float | None:
    return round(seconds, places) if seconds is not None else None


class TimeToAccuracy(Callback):
    def __init__(self, thresholds: Sequence[float] = THRESHOLDS) -> None:
        self.thresholds = {threshold_key(t): float(t) for t in thresholds}
        self.reached: dict[str, float | None] = dict.fromkeys(self.thresholds)
        self.earlier_seconds = 0.0  # fitting time of the run's earlier parts (before a resume)
        self.fit_seconds: float | None = None
        self.epochs = 0
        self._started: float | None = None
        self._validated_at: float | None = None  # elapsed seconds at the last validation's end
        self._test_started: float | None = None
        self._test_ended: float | None = None

    def elapsed(self) -> float:
        running = time.perf_counter() - self._started if self._started is not None else 0.0
        return self.earlier_seconds + running

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # From the fit's setup, not on_fit_start: work done once as fitting sets up (a
        # distilled run's teacher pass, training/distillation.py) counts in the fit.
        if stage == "fit":
            self._started, self.fit_seconds = time.perf_counter(), None

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and self._started is not None:
            self._validated_at = self.elapsed()
            pl_module.log("elapsed_seconds", self._validated_at, on_epoch=True, sync_dist=True)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # val_acc is computed after the validation epoch's hooks; checkpoints are saved after this.
        accuracy = trainer.callback_metrics.get("val_acc")
        if trainer.sanity_checking or self._validated_at is None or accuracy is None:
            return
        for key, threshold in self.thresholds.items():
            if self.reached[key] is None and float(accuracy) >= threshold - TOLERANCE:
                self.reached[key] = round(self._validated_at, 1)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.fit_seconds, self.epochs = self.elapsed(), trainer.current_epoch
        self._started = None

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._test_started, self._test_ended = time.perf_counter(), None

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._test_ended = time.perf_counter()

    def state_dict(self) -> dict[str, Any]:
        return {"elapsed_seconds": self.elapsed(), "reached": dict(self.reached)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Lightning also calls this when testing a checkpoint after fitting: the count of
        # this fit is kept then, and a time reached since that checkpoint is not forgotten.
        if self.fit_seconds is None:  # a resumed fit's restore, not a test's after the fit
            self.earlier_seconds = float(state_dict["elapsed_seconds"])
        for key, seconds in state_dict.get("reached", {}).items():
            if self.reached.get(key) is None:
                self.reached[key] = seconds

    def summary(self) -> dict[str, Any]:
        """test_metrics.json's fields; the test's time so far while it runs (RunSummary asks
        at its end)."""
        seconds, started, ended = self.fit_seconds, self._test_started, self._test_ended
        test = None if started is None else (ended or time.perf_counter()) - started
        return {
            "time_to_val_acc": dict(self.reached),
            "fit_seconds": rounded(seconds),
            "seconds_per_epoch": rounded(seconds and seconds / max(self.epochs, 1), 2),
            "test_seconds": rounded(test),
        }


def time_to_accuracy_line(summary: dict[str, Any], threshold: float = HEADLINE) -> str:
    """E.g. Time to 93% validation accuracy: 41.2 s (fit + test: 52.0 s)."""
    seconds = (summary.get("time_to_val_acc") or {}).get(threshold_key(threshold))
    reached = f"{seconds:.1f} s" if seconds is not None else "not reached"
    line = f"Time to {threshold:.0%} validation accuracy: {reached}"
    fit, test = summary.get("fit_seconds"), summary.get("test_seconds")
    return f"{line} (fit + test: {fit + test:.1f} s)" if None not in (fit, test) else line
