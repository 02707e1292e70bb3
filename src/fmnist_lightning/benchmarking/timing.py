"""Clock reads that mean the work is done, and timed windows of steps: of a function, of a
hand-written loop, and of the Trainer's training batches (``StepTimer``)."""

import functools
import itertools
import statistics
import time
import timeit

import lightning as L
import torch

from fmnist_lightning.errors import UsageError


def clock(device: torch.device) -> float:
    """``time.perf_counter()`` once queued GPU work is done, so that the time read means the
    work is done."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def median_rate(items: float, seconds: list[float]) -> float:
    return statistics.median(items / s for s in seconds)


def timed_windows(step, warmup: int, steps: int, repeats: int, device="cpu") -> list[float]:
    """Run ``warmup`` steps, then time ``repeats`` windows of ``steps`` steps each."""
    for _ in range(warmup):
        step()
    # timeit turns the garbage collector off while it times; a real run has it on.
    return timeit.repeat(step, "gc.enable()", functools.partial(clock, device), repeats, steps)


def timed(phases: dict, name: str, function, *args, **kwargs):
    """``function(...)``, its seconds recorded in ``phases[name]`` (where a run's time goes)."""
    started = time.perf_counter()
    result = function(*args, **kwargs)
    phases[name] = time.perf_counter() - started
    return result


class StepTimer(L.Callback):
    """Clock reads around every training batch; ``seconds``: the training epoch's (Lightning
    runs the epoch-end validation before its end hook, so it is included), then each test run's."""

    def __init__(self, warmup: int = 0, steps: int = 1) -> None:
        self.warmup, self.steps, self.started = warmup, steps, 0.0
        self.batch_starts, self.batch_ends, self.seconds = [], [], []

    def now(self, trainer: L.Trainer, batch_idx: int | None = None) -> float:
        # On a GPU, syncing every step would drain the queue: sync at window edges only.
        edge = batch_idx is None or batch_idx in range(self.warmup, batch_idx + 1, self.steps)
        return clock(trainer.strategy.root_device if edge else "cpu")  # "cpu": no sync

    def start(self, trainer: L.Trainer, *_) -> None:
        self.started = self.now(trainer)

    def end(self, trainer: L.Trainer, *_) -> None:
        self.seconds.append(self.now(trainer) - self.started)

    on_train_epoch_start = on_test_epoch_start = start
    on_train_epoch_end = on_test_epoch_end = end

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self.batch_starts.append(self.now(trainer, batch_idx))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.batch_ends.append(self.now(trainer, batch_idx))

    def windows(self) -> list[float]:
        """The windows of ``steps`` steps after the warm-up, each ending when the next step
        starts: all a step costs (batch, hooks, forward, backward, optimiser, logging)."""
        starts = self.batch_starts[self.warmup :: self.steps]
        if seconds := [end - start for start, end in itertools.pairwise(starts)]:
            return seconds
        n = len(self.batch_starts)  # the window needs the step after it, to end
        why = f"One epoch has {n} training batches, too few for {self.warmup}+{self.steps}+1 steps"
        raise UsageError(f"{why}: lower --warmup/--steps, or add data.")

    def between_steps_fraction(self) -> float:
        """Median share of each step cycle spent between one step's end and the next one's start."""
        starts, ends = self.batch_starts[self.warmup :], self.batch_ends[self.warmup :]
        cycles = zip(starts, ends, starts[1:], strict=False)
        return statistics.median((start - end) / (start - prev) for prev, end, start in cycles)


def loop_windows(loss, optimizer, loader, args, device, warmup: int, steps: int) -> list[float]:
    """``timed_windows`` of a hand-written loop over ``loader``, ``--repeats`` of them."""
    stream = itertools.chain.from_iterable(itertools.repeat(loader))

    def step() -> None:
        batch = [tensor.to(device, non_blocking=True) for tensor in next(stream)]
        optimizer.zero_grad(set_to_none=True)
        loss(batch).backward()
        optimizer.step()

    return timed_windows(step, warmup, steps, args.repeats, device)
