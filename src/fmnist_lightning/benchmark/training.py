"""Training speed: the project's Trainer, the same work in a plain loop, and the batch fetch alone."""

import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import TensorDataset

from fmnist_lightning.benchmark.harness import BenchmarkError, StepTimer, Windows, timed_windows
from fmnist_lightning.data.datamodule import FashionMNISTDataModule
from fmnist_lightning.data.sampler import EpochBatchSampler
from fmnist_lightning.models.module import FashionMNISTModule
from fmnist_lightning.training.builders import build_datamodule, build_module, build_trainer

# Precisions whose plain-loop twin is "the same float32 weights under the same autocast".
PLAIN_LOOP_PRECISIONS = ("32-true", "32", "bf16-mixed", "16-mixed")


@dataclass
class TrainerRun:
    """What one ``Trainer.fit`` through the training builders left behind, and how long it took."""

    trainer: L.Trainer
    module: FashionMNISTModule
    datamodule: FashionMNISTDataModule
    timer: StepTimer
    fit_seconds: float


def lightning_training(cfg: DictConfig, windows: Windows) -> TrainerRun:
    """Fit through ``training.builders`` (the path ``train`` runs) with a StepTimer attached."""
    L.seed_everything(cfg.seed, workers=True)
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    module = build_module(cfg, datamodule.classes)
    trainer = build_trainer(cfg)
    timer = StepTimer(windows.warmup, windows.steps)
    trainer.callbacks.append(timer)
    started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    return TrainerRun(trainer, module, datamodule, timer, time.perf_counter() - started)


def endless_batches(
    dataset: TensorDataset, batch_size: int, seed: int, device: torch.device
) -> Iterator[tuple[torch.Tensor, ...]]:
    """Full index-sliced batches of an in-memory dataset, epoch after epoch (the project's sampler)."""
    epoch = 0
    while True:
        # drop_last: every timed step then holds exactly batch_size images.
        sampler = EpochBatchSampler(
            len(dataset), batch_size, shuffle=True, seed=seed, drop_last=True, device=device
        )
        sampler.set_epoch(epoch)
        for indices in sampler:
            yield dataset[indices]
        epoch += 1


def plain_training(
    cfg: DictConfig,
    datamodule: FashionMNISTDataModule,
    windows: Windows,
    device: torch.device,
    forward_context: Callable[[], Any],
) -> list[float]:
    """A hand-written loop: the same network, tensors, optimiser, loss and autocast; no framework."""
    precision = cfg.trainer.precision
    if str(precision) not in PLAIN_LOOP_PRECISIONS:
        raise BenchmarkError(
            f"The plain-loop comparison supports precision {', '.join(PLAIN_LOOP_PRECISIONS)}; "
            f"got {precision!r}. Pass --precision with one of those."
        )
    L.seed_everything(cfg.seed)
    model = build_module(cfg, datamodule.classes).to(device).train()
    optimizer = instantiate(cfg.optimizer, params=model.parameters())
    batches = endless_batches(
        datamodule.tensors["train"], cfg.data.batch_size, cfg.data.shuffle_seed, device
    )

    def step() -> None:
        images, labels = next(batches)
        with forward_context():
            loss = F.cross_entropy(model(images), labels, label_smoothing=cfg.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return timed_windows(step, windows, device)


def data_fetch_seconds(datamodule: FashionMNISTDataModule, batches: int) -> float:
    """Median time to draw one batch from the project's train DataLoader, alone."""
    loader = datamodule.train_dataloader()
    times, iterator = [], iter(loader)
    for _ in range(min(batches, len(loader))):
        started = time.perf_counter()
        next(iterator)
        times.append(time.perf_counter() - started)
    return statistics.median(times)
