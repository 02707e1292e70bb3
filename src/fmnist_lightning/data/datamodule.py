"""Fashion-MNIST as a LightningDataModule that serves batches sliced from in-memory tensors.

torchvision parses the IDX files once; images are normalised once into one float tensor,
and every batch is an index slice of it. There is no per-sample PIL or ToTensor work,
and no worker processes, so waiting for data costs next to nothing.
"""

from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset
from torchvision.datasets import FashionMNIST

from fmnist_lightning.data.augment import BatchAugment, as_augment
from fmnist_lightning.data.files import (
    CLASS_NAMES,
    DataError,
    check_gz_files,
    check_readable,
    files_lock,
    missing_data_message,
    missing_files,
    raw_folder,
    verify_split,
)
from fmnist_lightning.data.normalise import normalise
from fmnist_lightning.data.sampler import EpochBatchSampler


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random split of range(n) into (train, validation) indices."""
    permutation = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = round(n * val_fraction)
    return permutation[n_val:], permutation[:n_val]


class FashionMNISTDataModule(L.LightningDataModule):
    """Train/validation split of the 60,000 training images, and the official 10,000 test images."""

    classes: tuple[str, ...] = CLASS_NAMES
    num_classes = len(CLASS_NAMES)

    def __init__(
        self,
        root: str,
        batch_size: int,
        eval_batch_size: int,
        val_fraction: float,
        split_seed: int,
        shuffle_seed: int,
        mean: float,
        std: float,
        download: bool,
        on_device: bool,
        augment: BatchAugment | dict | None = None,
    ) -> None:
        super().__init__()
        self.root, self.batch_size, self.eval_batch_size = Path(root), batch_size, eval_batch_size
        self.val_fraction, self.split_seed = val_fraction, split_seed
        self.shuffle_seed, self.mean, self.std = shuffle_seed, mean, std
        self.download, self.on_device = download, on_device
        self.tensors: dict[str, TensorDataset] = {}
        self.augment = as_augment(augment)

    def _ensure_files(self, train: bool, download: bool) -> int:
        """Download one split's files if missing and allowed, check them, return its image count.

        Nothing is parsed, so this is cheap to repeat. Runs side by side take turns
        (files_lock), so that none reads a file another is still unpacking.
        """
        with files_lock(self.root):
            check_readable(self.root)
            missing = missing_files(self.root)
            if missing and not download:
                reason = "downloading is off: data.download=false"
                if any((raw_folder(self.root) / f"{name}.gz").is_file() for name in missing):
                    reason += "; the .gz files are there, data.download=true unpacks them offline"
                raise DataError(missing_data_message(self.root, reason, missing))
            if missing:
                try:  # torchvision downloads (or unpacks the .gz files) and checks the MD5s
                    FashionMNIST(str(self.root), train=train, download=True)
                except RuntimeError as error:  # a failed download
                    check_gz_files(self.root, missing)  # the cause, when one of them is damaged
                    raise DataError(missing_data_message(self.root, str(error), missing)) from error
            return verify_split(self.root, train)

    def prepare_data(self) -> None:
        """Download when missing, else only check the files (Lightning calls it before fit and
        before test; setup parses once). A val_fraction that leaves no training batch or no
        validation image stops here, before any training."""
        n = self._ensure_files(True, self.download)
        self._ensure_files(False, self.download)
        n_val = round(n * self.val_fraction)  # as split_indices splits
        fraction, batch_size = self.val_fraction, self.batch_size
        if n - n_val < batch_size:
            raise DataError(
                f"data.val_fraction={fraction} leaves {n - n_val:,} of the {n:,} training images "
                f"for training, fewer than one batch (data.batch_size={batch_size}); lower "
                "data.val_fraction or data.batch_size."
            )
        if n_val < 1:
            raise DataError(
                f"data.val_fraction={fraction} leaves no image of the {n:,} for validation; "
                f"raise data.val_fraction to at least {1 / n:.2g}."
            )

    def _split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """One split's normalised images and labels, on the training device when on_device."""
        self._ensure_files(train, download=False)
        dataset = FashionMNIST(str(self.root), train=train, download=False)
        on_device = self.on_device and self.trainer is not None
        device = self.trainer.strategy.root_device if on_device else torch.device("cpu")
        return normalise(dataset.data, self.mean, self.std).to(device), dataset.targets.to(device)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit", "validate") and "train" not in self.tensors:
            images, labels = self._split(train=True)
            train, val = split_indices(len(labels), self.val_fraction, self.split_seed)
            train, val = train.to(labels.device), val.to(labels.device)
            self.tensors["train"] = TensorDataset(images[train], labels[train])
            self.tensors["val"] = TensorDataset(images[val], labels[val])
        if stage in (None, "test", "predict") and "test" not in self.tensors:
            self.tensors["test"] = TensorDataset(*self._split(train=False))

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        dataset = self.tensors[split]
        rank, world_size = 0, 1
        if self.trainer is not None:
            rank, world_size = self.trainer.global_rank, self.trainer.world_size
        device = dataset.tensors[0].device
        sampler = EpochBatchSampler(
            len(dataset), batch_size, shuffle, self.shuffle_seed, rank, world_size, device
        )
        # batch_size=None: the sampler yields whole batches of indices, and TensorDataset
        # slices them in one indexing operation. The loader's own generator: starting an
        # epoch then draws nothing from the global RNG, so dropout's random numbers do not
        # depend on how many loaders were started (a resumed run starts fewer).
        return DataLoader(dataset, sampler=sampler, batch_size=None, generator=torch.Generator())

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Augment training batches, on the training device; other splits pass as they are."""
        # Lightning's model summary sends the module's example image here alone, while
        # training: it passes unaugmented, drawing no random numbers from the run's stream.
        if self.augment is None or self.trainer is None or not self.trainer.training:
            return batch
        if isinstance(batch, torch.Tensor):
            return batch
        images, labels = batch
        return self.augment(images), labels
