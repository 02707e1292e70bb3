"""Fashion-MNIST normalised once into in-memory tensors, every batch an index slice of them:
no per-sample PIL work and no worker processes, so waiting for data costs next to nothing."""

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partialmethod
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset
from torchvision.datasets import FashionMNIST

from fmnist_lightning.data import files
from fmnist_lightning.data.augment import BatchAugment
from fmnist_lightning.data.normalise import normalise


@dataclass(eq=False)
class EpochBatchSampler(Sampler[torch.Tensor]):
    """Batches of indices in an order that depends only on (seed, epoch): Lightning calls
    ``set_epoch`` every epoch, so a run resumed at epoch k sees the batches of one that never
    stopped. Under DDP each rank takes every ``world_size``-th batch of the same order."""

    size: int
    batch_size: int
    shuffle: bool
    seed: int = 0
    rank: int = 0
    world_size: int = 1
    device: torch.device | str = "cpu"
    epoch: int = field(default=0, init=False)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(range(self.rank, -(-self.size // self.batch_size), self.world_size))

    def __iter__(self) -> Iterator[torch.Tensor]:
        generator, n = torch.Generator().manual_seed(self.seed + self.epoch), self.size
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        # One copy per epoch: the batches are sliced on the device.
        yield from order.to(self.device).split(self.batch_size)[self.rank :: self.world_size]


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    permutation = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = round(n * val_fraction)
    return permutation[n_val:], permutation[:n_val]


@dataclass(eq=False)
class FashionMNISTDataModule(L.LightningDataModule):
    """Train/validation split of the 60,000 training images, and the official 10,000 test images."""

    classes: ClassVar[tuple[str, ...]] = files.CLASS_NAMES
    root: str | Path
    batch_size: int
    eval_batch_size: int
    val_fraction: float
    split_seed: int
    shuffle_seed: int
    mean: float
    std: float
    download: bool
    on_device: bool
    augment: BatchAugment | None = None

    def __post_init__(self) -> None:
        super().__init__()
        self.root, self.tensors = Path(self.root), {}
        self.carried: torch.Tensor | None = None  # see carry_in_training_batches

    def prepare_data(self) -> None:
        """Download or check the files, and refuse a val_fraction that starves a split, before
        any training."""
        n = files.ensure_files(self.root, self.download)
        n_val, key = round(n * self.val_fraction), f"data.val_fraction={self.val_fraction}"
        if n - n_val < self.batch_size:  # n_val as split_indices counts it
            kept = f"{n - n_val:,} of the {n:,} training images for training"
            batch = f"fewer than one batch (data.batch_size={self.batch_size})"
            raise files.DataError(f"{key} leaves {kept}, {batch}; lower one of the two.")
        if n_val < 1:
            message = f"{key} leaves no image of the {n:,} for validation"
            raise files.DataError(f"{message}; raise data.val_fraction to at least {1 / n:.2g}.")

    def _split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        files.ensure_files(self.root, download=False)  # a sentence, not the parser's error
        dataset = FashionMNIST(str(self.root), train=train, download=False)
        device = self.trainer.strategy.root_device if self.on_device and self.trainer else "cpu"
        return normalise(dataset.data, self.mean, self.std).to(device), dataset.targets.to(device)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit", "validate") and "train" not in self.tensors:
            images, labels = self._split(train=True)
            train, val = split_indices(len(labels), self.val_fraction, self.split_seed)
            self.tensors["train"] = TensorDataset(images[train], labels[train])
            self.tensors["val"] = TensorDataset(images[val], labels[val])
        if stage in (None, "test", "predict") and "test" not in self.tensors:
            self.tensors["test"] = TensorDataset(*self._split(train=False))

    def carry_in_training_batches(self, values: torch.Tensor) -> None:
        """Training batches become (images, labels, values of those images): per-image targets
        (a distilled run's teacher output), set after ``setup`` and before the loader is made."""
        self.carried = values.to(self.tensors["train"].tensors[0].device)

    def _loader(self, split: str) -> DataLoader:
        dataset, trainer, shuffle = self.tensors[split], self.trainer, split == "train"
        if shuffle and self.carried is not None:
            dataset = TensorDataset(*dataset.tensors, self.carried)
        batch_size = self.batch_size if shuffle else self.eval_batch_size
        rank, world_size = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        device = dataset.tensors[0].device
        sampler = EpochBatchSampler(
            len(dataset), batch_size, shuffle, self.shuffle_seed, rank, world_size, device
        )
        # batch_size=None: the sampler yields whole batches of indices, and TensorDataset
        # slices them in one indexing operation. The loader's own generator: starting an
        # epoch then draws nothing from the global RNG, so dropout's random numbers do not
        # depend on how many loaders were started (a resumed run starts fewer).
        return DataLoader(dataset, sampler=sampler, batch_size=None, generator=torch.Generator())

    train_dataloader = partialmethod(_loader, "train")
    val_dataloader = partialmethod(_loader, "val")
    test_dataloader = partialmethod(_loader, "test")

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Augment training batches only, on the training device."""
        # Lightning's model summary sends the module's example image here alone, while
        # training: it passes unaugmented, drawing no random numbers from the run's stream.
        training = self.trainer is not None and self.trainer.training
        if self.augment is None or not training or isinstance(batch, torch.Tensor):
            return batch
        return self.augment(batch[0]), *batch[1:]
