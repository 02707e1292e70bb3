"""Fashion-MNIST as a LightningDataModule that serves batches sliced from in-memory tensors.

torchvision parses the IDX files once; images are normalised once into one float tensor,
and every batch is an index slice of it. There is no per-sample PIL or ToTensor work,
and no worker processes, so waiting for data costs next to nothing.
"""

from collections.abc import Iterator
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset
from torchvision.datasets import FashionMNIST

CLASS_NAMES: tuple[str, ...] = tuple(FashionMNIST.classes)
RAW_FILES: tuple[str, ...] = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class DataError(RuntimeError):
    """The dataset on disk is missing, unreadable or corrupt; the message says what to do."""


class DataNotFoundError(DataError):
    """The dataset is neither on disk nor downloadable."""


def missing_data_message(root: Path, reason: str) -> str:
    expected = "\n".join(f"  {root / 'FashionMNIST' / 'raw' / name}" for name in RAW_FILES)
    return (
        f"Fashion-MNIST was not found under data root '{root}' and could not be downloaded "
        f"({reason}).\nExpected these four files (the .gz versions are also accepted):\n{expected}\n"
        "Point the project at a folder that holds FashionMNIST/raw/, either with the "
        "override data.root=/path/to/data or the environment variable FMNIST_DATA_DIR."
    )


def normalise(images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 (N, 28, 28) images → float (N, 1, 28, 28), scaled to [0, 1] then standardised."""
    return ((images.float() / 255.0 - mean) / std).unsqueeze(1)


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random split of range(n) into (train, validation) indices."""
    permutation = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = round(n * val_fraction)
    return permutation[n_val:], permutation[:n_val]


class EpochBatchSampler(Sampler[torch.Tensor]):
    """Yields index tensors, one per batch; the shuffle order depends only on (seed, epoch).

    Lightning calls ``set_epoch`` at the start of every epoch, so a run resumed at epoch k
    sees the same batches as one that never stopped. Under DDP each rank takes every
    ``world_size``-th batch of the same order.
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | str = "cpu",
    ) -> None:
        self.size, self.batch_size, self.shuffle, self.seed = size, batch_size, shuffle, seed
        self.drop_last, self.rank, self.world_size = drop_last, rank, world_size
        self.device = torch.device(device)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batch_count(self) -> int:
        full, rest = divmod(self.size, self.batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    def __len__(self) -> int:
        return len(range(self.rank, self._batch_count(), self.world_size))

    def __iter__(self) -> Iterator[torch.Tensor]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.size, generator=generator)
        else:
            order = torch.arange(self.size)
        # One copy per epoch: on a GPU the batches are then sliced on the device.
        order = order.to(self.device)
        for batch in range(self.rank, self._batch_count(), self.world_size):
            yield order[batch * self.batch_size : (batch + 1) * self.batch_size]


class FashionMNISTDataModule(L.LightningDataModule):
    """Train/validation split of the 60,000 training images, and the official 10,000 test images."""

    classes: tuple[str, ...] = CLASS_NAMES

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
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_fraction, self.split_seed, self.shuffle_seed = (
            val_fraction,
            split_seed,
            shuffle_seed,
        )
        self.mean, self.std = mean, std
        self.download, self.on_device = download, on_device
        self.tensors: dict[str, TensorDataset] = {}

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def _load(self, train: bool, download: bool) -> FashionMNIST:
        try:
            return FashionMNIST(str(self.root), train=train, download=download)
        except RuntimeError as error:  # torchvision's "Dataset not found" or a failed download
            raise DataNotFoundError(missing_data_message(self.root, str(error))) from error

    def prepare_data(self) -> None:
        """Download when missing; with the files present this only checks them."""
        for train in (True, False):
            self._load(train, self.download)

    def _device(self) -> torch.device:
        if self.on_device and self.trainer is not None:
            return self.trainer.strategy.root_device
        return torch.device("cpu")

    def setup(self, stage: str | None = None) -> None:
        device = self._device()
        if stage in (None, "fit", "validate") and "train" not in self.tensors:
            dataset = self._load(train=True, download=False)
            images = normalise(dataset.data, self.mean, self.std).to(device)
            labels = dataset.targets.to(device)
            train_idx, val_idx = split_indices(len(labels), self.val_fraction, self.split_seed)
            train_idx, val_idx = train_idx.to(device), val_idx.to(device)
            self.tensors["train"] = TensorDataset(images[train_idx], labels[train_idx])
            self.tensors["val"] = TensorDataset(images[val_idx], labels[val_idx])
        if stage in (None, "test", "predict") and "test" not in self.tensors:
            dataset = self._load(train=False, download=False)
            images = normalise(dataset.data, self.mean, self.std).to(device)
            self.tensors["test"] = TensorDataset(images, dataset.targets.to(device))

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        dataset = self.tensors[split]
        rank, world_size = 0, 1
        if self.trainer is not None:
            rank, world_size = self.trainer.global_rank, self.trainer.world_size
        sampler = EpochBatchSampler(
            len(dataset),
            batch_size,
            shuffle=shuffle,
            seed=self.shuffle_seed,
            rank=rank,
            world_size=world_size,
            device=dataset.tensors[0].device,
        )
        # batch_size=None: the sampler yields whole batches of indices, and TensorDataset
        # slices them in one indexing operation.
        return DataLoader(dataset, sampler=sampler, batch_size=None)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()
