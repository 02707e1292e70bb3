"""What the Trainer's speed is compared with: the same training step in a plain loop, and the
tutorial's loop (torchvision, ``ToTensor``, DataLoader workers, batch 32, fp32, Adam)."""

import argparse
import warnings

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch.utils.data import DataLoader

from fmnist_lightning.benchmarking.timing import loop_windows, median_rate
from fmnist_lightning.models.hparams import plain
from fmnist_lightning.models.module import build_network
from fmnist_lightning.training import builders


def plain_training(cfg, trainer: L.Trainer, args: argparse.Namespace) -> list[float]:
    """``training_step`` in a plain loop: ``trainer``'s network, batches, optimiser, precision."""
    L.seed_everything(cfg.seed)
    device, precision = trainer.strategy.root_device, trainer.precision_plugin
    model = precision.convert_module(builders.build_module(cfg, trainer.datamodule.classes))
    optimizer = instantiate(cfg.optimizer, params=model.to(device).parameters())

    def loss(batch: list[torch.Tensor]) -> torch.Tensor:
        with precision.forward_context():
            return model.training_step(precision.convert_input(batch), 0)

    loader = trainer.datamodule.train_dataloader()
    with warnings.catch_warnings():  # self.log() without a Trainer warns, and logs nothing
        warnings.filterwarnings("ignore", "You are trying to `self.log")
        return loop_windows(loss, optimizer, loader, args, device, args.warmup, args.steps)


def textbook_baseline(cfg, args: argparse.Namespace, device: torch.device, rate: float) -> dict:
    """The tutorial loop: torchvision + ``ToTensor``, DataLoader workers, batch 32, fp32, Adam;
    ``rate``: the Trainer's images/s, to compare."""
    from torchvision import datasets, transforms

    L.seed_everything(cfg.seed)
    # The bare network: contiguous memory, whatever model.channels_last says for the project.
    model = build_network(plain(cfg.model.net), num_classes=10).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1.0e-3)
    dataset = datasets.FashionMNIST(str(cfg.data.root), transform=transforms.ToTensor())
    loader = DataLoader(dataset, 32, shuffle=True, num_workers=args.baseline_workers)

    def loss(batch: list[torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(model(batch[0]), batch[1])

    seconds = loop_windows(loss, optimizer, loader, args, device, 5, args.baseline_steps)
    baseline = median_rate(args.baseline_steps * 32, seconds)
    return {
        "images_per_s": baseline,
        "batch_size": 32,
        "workers": args.baseline_workers,
        "precision": "32-true",
        "speedup_vs_textbook": rate / baseline,
        "window_seconds": seconds,
    }
