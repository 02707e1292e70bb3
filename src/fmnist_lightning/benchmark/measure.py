"""The timings: windows of steps after a warm-up, and the runs they time (the project's
Trainer, the same training step in a plain loop, the batch fetch alone, ``Trainer.test``, a
checkpoint's inference path, the textbook baseline)."""

import itertools
import statistics
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import DataLoader, TensorDataset

from fmnist_lightning.errors import UsageError
from fmnist_lightning.inference.batches import predict_probabilities
from fmnist_lightning.models.module import FashionMNISTModule, build_network
from fmnist_lightning.training.builders import build_datamodule, build_module, build_trainer, plain

# Precisions whose plain-loop twin is "the same float32 weights under the same autocast".
PLAIN_LOOP_PRECISIONS = ("32-true", "32", "bf16-mixed", "16-mixed")
CPU = torch.device("cpu")  # no synchronisation around the timed work


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that a clock read means the work is done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_rate(items: float, seconds: list[float]) -> float:
    """Median of items/second over windows that each processed ``items``."""
    return statistics.median(items / s for s in seconds)


def timed_windows(
    step: Callable[[], object], warmup: int, steps: int, repeats: int, device: torch.device
) -> list[float]:
    """Run ``warmup`` steps, then time ``repeats`` windows of ``steps`` steps each."""
    for _ in range(warmup):
        step()
    seconds = []
    for _ in range(repeats):
        synchronize(device)
        started = time.perf_counter()
        for _ in range(steps):
            step()
        synchronize(device)
        seconds.append(time.perf_counter() - started)
    return seconds


def window_seconds(starts: list[float], warmup: int, steps: int) -> list[float]:
    """Durations of consecutive ``steps``-step windows after ``warmup``, from per-step start times.

    A window ends when the step after it starts, so it holds everything a step costs:
    fetching the batch, the hooks, forward, backward, the optimiser and the logging.
    """
    return [end - start for start, end in itertools.pairwise(starts[warmup::steps])]


class StepTimer(L.Callback):
    """Clock reads around every training batch, the epoch, and each test run."""

    def __init__(self, warmup: int = 0, steps: int = 1) -> None:
        self.warmup, self.steps = warmup, steps
        self.batch_starts: list[float] = []
        self.batch_ends: list[float] = []
        self.epoch_seconds: list[float] = []
        self.test_seconds: list[float] = []
        self.started = 0.0

    def now(self, trainer: L.Trainer, batch_idx: int | None = None) -> float:
        # On a GPU, syncing every step would drain the queue: sync at window edges only.
        at_edge = batch_idx is not None and batch_idx >= self.warmup
        if batch_idx is None or (at_edge and (batch_idx - self.warmup) % self.steps == 0):
            synchronize(trainer.strategy.root_device)
        return time.perf_counter()

    def start(self, trainer: L.Trainer, *_: Any) -> None:
        self.started = self.now(trainer)

    on_train_epoch_start = on_test_epoch_start = start

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self.batch_starts.append(self.now(trainer, batch_idx))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.batch_ends.append(self.now(trainer, batch_idx))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # Lightning runs the epoch-end validation before this hook, so it is included.
        self.epoch_seconds.append(self.now(trainer) - self.started)

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self.test_seconds.append(self.now(trainer) - self.started)

    def windows(self) -> list[float]:
        """The Trainer's window durations, cut from the step start times of the whole epoch."""
        if seconds := window_seconds(self.batch_starts, self.warmup, self.steps):
            return seconds
        raise UsageError(
            f"One epoch has {len(self.batch_starts)} training batches, too few for "
            f"{self.warmup} warm-up steps and a window of {self.steps} (+1); lower "
            "--warmup/--steps, or raise the data size."
        )

    def between_steps_fraction(self) -> float:
        """Median share of each step cycle spent between one step's end and the next one's start."""
        starts, ends = self.batch_starts[self.warmup :], self.batch_ends[self.warmup :]
        cycles = zip(starts, ends, starts[1:], strict=False)
        return statistics.median((start - end) / (start - prev) for prev, end, start in cycles)


def lightning_training(cfg: DictConfig, timer: StepTimer) -> tuple[L.Trainer, float]:
    """Fit through ``training.builders`` (the path ``train`` runs) with ``timer`` attached;
    the Trainer and the seconds ``fit`` took."""
    L.seed_everything(cfg.seed, workers=True)
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    module = build_module(cfg, datamodule.classes)
    trainer = build_trainer(cfg, [timer])
    started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    return trainer, time.perf_counter() - started


def plain_training(cfg: DictConfig, trainer: L.Trainer, args: Any) -> list[float]:
    """A hand-written loop over the module's own ``training_step``: the same network, loss,
    metrics, batches (the project's train DataLoader), optimiser and autocast as ``trainer``'s,
    no framework around them."""
    if str(cfg.trainer.precision) not in PLAIN_LOOP_PRECISIONS:
        raise UsageError(
            f"The plain-loop comparison supports precision {', '.join(PLAIN_LOOP_PRECISIONS)}; "
            f"got {cfg.trainer.precision!r}. Pass --precision with one of those."
        )
    L.seed_everything(cfg.seed)
    device = trainer.strategy.root_device
    model = build_module(cfg, trainer.datamodule.classes).to(device).train()
    optimizer = instantiate(cfg.optimizer, params=model.parameters())
    loader = trainer.datamodule.train_dataloader()
    stream = itertools.chain.from_iterable(itertools.repeat(loader))  # epoch after epoch

    def step() -> None:
        batch = [tensor.to(device, non_blocking=True) for tensor in next(stream)]
        with trainer.precision_plugin.forward_context():
            loss = model.training_step(batch, 0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    with warnings.catch_warnings():  # self.log() without a Trainer warns, and logs nothing
        warnings.filterwarnings("ignore", "You are trying to `self.log")
        return timed_windows(step, args.warmup, args.steps, args.repeats, device)


def data_fetch_seconds(trainer: L.Trainer, batches: int) -> float:
    """Median time to draw one batch from the project's train DataLoader, alone."""
    loader = trainer.datamodule.train_dataloader()
    iterator, count = iter(loader), min(batches, len(loader))
    return statistics.median(timed_windows(lambda: next(iterator), 0, 1, count, CPU))


def trainer_test(trainer: L.Trainer, timer: StepTimer, repeats: int) -> int:
    """``Trainer.test`` once to warm up, then ``repeats`` timed times (the timer records each
    test epoch; the warm-up one is dropped). Returns the number of test images."""
    for _ in range(repeats + 1):
        trainer.test(trainer.lightning_module, datamodule=trainer.datamodule, verbose=False)
    del timer.test_seconds[0]
    return len(trainer.datamodule.tensors["test"])


def inference_speed(
    module: FashionMNISTModule,
    test: TensorDataset,
    batch_size: int,
    precisions: Sequence[str],
    repeats: int,
) -> dict[str, Any]:
    """Per precision, ``repeats`` passes of ``inference.batches.predict_probabilities`` (what
    ``evaluate`` and ``Classifier`` run) after one warm-up batch: median wall and CPU seconds,
    images/s, accuracy, and the share of images whose predicted class agrees with the first
    (reference) precision's. Its outputs come back to the CPU, so no extra sync is needed.

    On a shared machine the wall time depends on the other load; CPU seconds divided by the
    thread count is what an idle machine would take.
    """
    images, labels = test.tensors
    by_precision, reference = {}, None
    for precision in precisions:
        predict_probabilities(module, images[:batch_size], batch_size, precision)
        walls, cpus = [], []
        for _ in range(repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            predicted = predict_probabilities(module, images, batch_size, precision).argmax(1)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        reference = predicted if reference is None else reference
        by_precision[precision] = {
            "wall_seconds": statistics.median(walls),
            "cpu_seconds": statistics.median(cpus),
            "images_per_s": len(images) / statistics.median(walls),
            "accuracy": (predicted == labels.cpu()).float().mean().item(),
            "agreement": (predicted == reference).float().mean().item(),
            "window_seconds": walls,
        }
    return {"reference_precision": precisions[0], "by_precision": by_precision}


def textbook_baseline(
    cfg: DictConfig, args: Any, device: torch.device, lightning_rate: float
) -> dict[str, Any]:
    """The tutorial loop's speed, and the project's speed-up over it: torchvision dataset +
    ``ToTensor``, ``DataLoader`` with ``--baseline-workers`` processes, batch 32, fp32,
    contiguous memory, Adam, plain cross-entropy."""
    from torchvision.datasets import FashionMNIST
    from torchvision.transforms import ToTensor

    L.seed_everything(cfg.seed)
    # The bare network: contiguous memory, whatever model.channels_last says for the project.
    model = build_network(plain(cfg.model.net), num_classes=10).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1.0e-3)
    dataset = FashionMNIST(str(cfg.data.root), train=True, transform=ToTensor())
    loader = DataLoader(dataset, 32, shuffle=True, num_workers=args.baseline_workers)

    def batches() -> Iterator:
        while True:
            yield from loader

    stream = batches()

    def step() -> None:
        images, labels = (tensor.to(device) for tensor in next(stream))
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    try:
        seconds = timed_windows(step, 5, args.baseline_steps, args.repeats, device)
    finally:
        stream.close()  # ends the epoch's iterator, and with it the worker processes
    rate = median_rate(args.baseline_steps * 32, seconds)
    return {
        "images_per_s": rate,
        "batch_size": 32,
        "workers": args.baseline_workers,
        "precision": "32-true",
        "speedup_vs_textbook": lightning_rate / rate,
        "window_seconds": seconds,
    }
