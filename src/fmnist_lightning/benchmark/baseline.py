"""The textbook baseline: how a tutorial trains the same network (per-sample ToTensor, workers)."""

from collections.abc import Iterator

import lightning as L
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from fmnist_lightning.benchmark.harness import Windows, timed_windows
from fmnist_lightning.models.module import build_network
from fmnist_lightning.training.builders import plain

TEXTBOOK_BATCH_SIZE = 32
TEXTBOOK_LR = 1.0e-3
TEXTBOOK_PRECISION = "32-true"


def textbook_baseline(
    cfg: DictConfig, windows: Windows, workers: int, device: torch.device
) -> list[float]:
    """Seconds per window of the tutorial loop: torchvision dataset + ``ToTensor``, ``DataLoader``
    with ``workers`` processes, batch 32, fp32, contiguous memory, Adam, plain cross-entropy."""
    from torchvision.datasets import FashionMNIST
    from torchvision.transforms import ToTensor

    L.seed_everything(cfg.seed)
    # The bare network: contiguous memory, whatever model.channels_last says for the project.
    model = build_network(plain(cfg.model.net), num_classes=10).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=TEXTBOOK_LR)
    dataset = FashionMNIST(str(cfg.data.root), train=True, transform=ToTensor())
    loader = DataLoader(dataset, batch_size=TEXTBOOK_BATCH_SIZE, shuffle=True, num_workers=workers)

    def batches() -> Iterator:
        while True:
            yield from loader

    stream = batches()

    def step() -> None:
        images, labels = next(stream)
        images, labels = images.to(device), labels.to(device)
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    try:
        return timed_windows(step, windows, device)
    finally:
        stream.close()  # ends the epoch's iterator, and with it the worker processes
