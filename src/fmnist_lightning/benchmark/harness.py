"""Timing: windows of steps after a warm-up, their medians, and where a run's time went."""

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import lightning as L
import torch


class BenchmarkError(ValueError):
    """A benchmark that cannot measure what it was asked to (its message says what to change)."""


@dataclass(frozen=True)
class Windows:
    """``repeats`` timed windows of ``steps`` steps each, after ``warmup`` untimed steps."""

    warmup: int
    steps: int
    repeats: int

    @property
    def batches_needed(self) -> int:
        """Batches one epoch must hold for every window (a window ends when the next step starts)."""
        return self.warmup + self.steps * self.repeats + 1


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that a clock read means the work is done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def timed_phase(phases: dict[str, float], name: str) -> Iterator[None]:
    """Record how long a block took under ``phases[name]`` (to see where a run's time goes)."""
    started = time.perf_counter()
    yield
    phases[name] = time.perf_counter() - started


def median_rate(items: float, seconds: list[float]) -> float:
    """Median of items/second over windows that each processed ``items``."""
    return statistics.median(items / s for s in seconds)


def window_seconds(starts: list[float], warmup: int, steps: int) -> list[float]:
    """Durations of consecutive ``steps``-step windows after ``warmup``, from per-step start times.

    A window ends when the step after it starts, so it holds everything a step costs:
    fetching the batch, the hooks, forward, backward, the optimiser and the logging.
    """
    edges = range(warmup, len(starts), steps)
    return [starts[b] - starts[a] for a, b in zip(edges, list(edges)[1:], strict=False)]


def timed_windows(
    step: Callable[[], object], windows: Windows, device: torch.device
) -> list[float]:
    """Run ``windows.warmup`` steps, then time ``windows.repeats`` windows of ``windows.steps``."""
    for _ in range(windows.warmup):
        step()
    seconds = []
    for _ in range(windows.repeats):
        synchronize(device)
        started = time.perf_counter()
        for _ in range(windows.steps):
            step()
        synchronize(device)
        seconds.append(time.perf_counter() - started)
    return seconds


class StepTimer(L.Callback):
    """Clock reads around every training batch, the epoch, and each test run."""

    def __init__(self, warmup: int = 0, steps: int = 1) -> None:
        self.warmup, self.steps = warmup, steps
        self.batch_starts: list[float] = []
        self.batch_ends: list[float] = []
        self.epoch_seconds: list[float] = []
        self.test_seconds: list[float] = []
        self._epoch_started = self._test_started = 0.0

    def _now(self, trainer: L.Trainer, batch_idx: int | None = None) -> float:
        # On a GPU, syncing every step would drain the queue: sync at window edges only.
        at_edge = batch_idx is not None and batch_idx >= self.warmup
        if batch_idx is None or (at_edge and (batch_idx - self.warmup) % self.steps == 0):
            synchronize(trainer.strategy.root_device)
        return time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_started = self._now(trainer)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self.batch_starts.append(self._now(trainer, batch_idx))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.batch_ends.append(self._now(trainer, batch_idx))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning runs the epoch-end validation before this hook, so it is included.
        self.epoch_seconds.append(self._now(trainer) - self._epoch_started)

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._test_started = self._now(trainer)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.test_seconds.append(self._now(trainer) - self._test_started)

    def between_steps_fraction(self, warmup: int) -> float:
        """Median share of each step cycle spent between one step's end and the next one's start."""
        shares = [
            (start - end) / (start - prev_start)
            for prev_start, end, start in zip(
                self.batch_starts[warmup:-1],
                self.batch_ends[warmup:],
                self.batch_starts[warmup + 1 :],
                strict=False,
            )
        ]
        return statistics.median(shares)
