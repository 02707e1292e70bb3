"""Fashion-MNIST as a LightningDataModule that serves batches sliced from in-memory tensors.

torchvision parses the IDX files once; images are normalised once into one float tensor,
and every batch is an index slice of it. There is no per-sample PIL or ToTensor work,
and no worker processes, so waiting for data costs next to nothing.
"""

import math
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset
from torchvision.datasets import FashionMNIST

from fmnist_lightning.augment import BatchAugment, as_augment

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


def missing_data_message(root: Path, reason: str, missing: list[str] | None = None) -> str:
    expected = "\n".join(f"  {root / 'FashionMNIST' / 'raw' / name}" for name in RAW_FILES)
    missing_line = f"Missing: {', '.join(missing)}.\n" if missing else ""
    return (
        f"Fashion-MNIST was not found under data root '{root}' and could not be downloaded "
        f"({reason}).\n{missing_line}Expected these four files (the .gz versions are also accepted):\n{expected}\n"
        "Point the project at a folder that holds FashionMNIST/raw/, either with the "
        "override data.root=/path/to/data or the environment variable FMNIST_DATA_DIR."
    )


# Checks of the files on disk, cheap enough for every run (< 1 ms: headers, sizes and the
# labels), so that a damaged file gets a sentence instead of a reshape error from the parser.
# The MD5s that torchvision knows are of the .gz downloads, not of the files it reads, and
# hashing them would cost more than parsing the data (~0.2 s), so they are left to downloads.
IMAGE_SHAPE = (28, 28)


class CorruptDataError(DataError):
    """A dataset file that is truncated or altered."""


def raw_folder(root: Path) -> Path:
    return root / "FashionMNIST" / "raw"


def split_files(train: bool) -> tuple[str, str]:
    """The (images, labels) file names of the training or the test split."""
    prefix = "train" if train else "t10k"
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def damaged(path: Path, problem: str, files: str = "it") -> CorruptDataError:
    return CorruptDataError(
        f"The Fashion-MNIST file '{path}' is damaged: {problem}. Delete {files} so that the "
        "next run downloads it again (data.download=true, needs internet), or point data.root "
        "(or FMNIST_DATA_DIR) at a folder that holds a good copy."
    )


def unreadable(path: Path, kind: str) -> DataError:
    fix = "chmod -R u+rX" if kind == "folder" else "chmod u+r"
    return DataError(
        f"The data {kind} '{path}' cannot be read (permission denied). Give your user "
        f"access, e.g. {fix} '{path}', or point data.root (or FMNIST_DATA_DIR) at a readable copy."
    )


def check_readable(root: Path) -> None:
    """Raise DataError for a data folder or file that exists but cannot be read."""
    raw = raw_folder(root)
    for folder in (root, root / "FashionMNIST", raw):
        try:
            folder.stat()
        except FileNotFoundError:
            return  # missing files are reported, or downloaded, later
        except PermissionError as error:  # a parent folder cannot be searched
            raise unreadable(folder.parent, "folder") from error
        if not folder.is_dir():
            raise DataError(
                f"'{folder}' is a file, but it should be a folder of the data root. "
                "Point data.root (or FMNIST_DATA_DIR) at the folder that holds FashionMNIST/raw/."
            )
        if not os.access(folder, os.R_OK | os.X_OK):
            raise unreadable(folder, "folder")
    for name in RAW_FILES:
        if (raw / name).exists() and not os.access(raw / name, os.R_OK):
            raise unreadable(raw / name, "file")


def missing_files(root: Path) -> list[str]:
    return [name for name in RAW_FILES if not (raw_folder(root) / name).is_file()]


def read_idx_shape(path: Path, ndim: int) -> tuple[int, ...]:
    """The shape in an IDX file's header, once the header and the file size agree with it."""
    header_size = 4 * (1 + ndim)
    try:
        size = path.stat().st_size
        with path.open("rb") as file:
            header = file.read(header_size)
    except OSError as error:
        raise damaged(path, f"it cannot be read ({error.strerror or error})") from error
    if len(header) < header_size:
        raise damaged(path, f"it is {size} bytes long, shorter than its {header_size}-byte header")
    magic, *shape = struct.unpack(f">{1 + ndim}I", header)
    if magic != 0x0800 | ndim:
        raise damaged(
            path,
            f"its magic number is 0x{magic:08x}, not 0x{0x0800 | ndim:08x} (unsigned bytes, "
            f"{ndim} dimension{'s' if ndim > 1 else ''})",
        )
    expected = header_size + math.prod(shape)
    if size != expected:
        raise damaged(
            path,
            f"it is {size:,} bytes long, but its header describes {'x'.join(map(str, shape))} "
            f"values ({expected:,} bytes): the file is truncated or altered",
        )
    return tuple(shape)


def verify_split(root: Path, train: bool) -> None:
    """Check one split's two IDX files before torchvision parses them; raise CorruptDataError."""
    images_path, labels_path = (raw_folder(root) / name for name in split_files(train))
    count, *image_shape = read_idx_shape(images_path, ndim=3)
    (label_count,) = read_idx_shape(labels_path, ndim=1)
    if tuple(image_shape) != IMAGE_SHAPE:
        raise damaged(images_path, f"its images are {image_shape[0]}x{image_shape[1]}, not 28x28")
    if count != label_count:
        raise damaged(
            images_path,
            f"it holds {count:,} images but '{labels_path}' holds {label_count:,} labels",
            files="both files",
        )
    labels = np.fromfile(labels_path, dtype=np.uint8, offset=8)
    bad = np.flatnonzero(labels >= len(CLASS_NAMES))
    if bad.size:
        raise damaged(
            labels_path,
            f"labels must be 0..{len(CLASS_NAMES) - 1}, but {bad.size:,} of {labels.size:,} "
            f"are not (the first, at index {bad[0]}, is {labels[bad[0]]})",
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
        augment: BatchAugment | dict | None = None,
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
        self.augment = as_augment(augment)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def _ensure_files(self, train: bool, download: bool) -> None:
        """Make sure one split's files are there and sound: download them if allowed, then check
        their headers and labels. Nothing is parsed here, so this is cheap to repeat."""
        check_readable(self.root)
        missing = missing_files(self.root)
        if missing and not download:
            reason = "downloading is off: data.download=false"
            if any((raw_folder(self.root) / f"{name}.gz").is_file() for name in missing):
                reason += "; the .gz files are there, and data.download=true unpacks them offline"
            raise DataNotFoundError(missing_data_message(self.root, reason, missing))
        if missing:
            try:  # torchvision downloads (or unpacks the .gz files) and checks the MD5s
                FashionMNIST(str(self.root), train=train, download=True)
            except RuntimeError as error:  # a failed download
                raise DataNotFoundError(
                    missing_data_message(self.root, str(error), missing)
                ) from error
        verify_split(self.root, train)

    def _load(self, train: bool) -> FashionMNIST:
        """Parse one split with torchvision, after checking its files."""
        self._ensure_files(train, download=False)
        try:
            return FashionMNIST(str(self.root), train=train, download=False)
        except RuntimeError as error:  # torchvision's "Dataset not found"
            raise DataNotFoundError(missing_data_message(self.root, str(error))) from error

    def prepare_data(self) -> None:
        """Download when missing; with the files present this only checks them (no parsing:
        Lightning calls it again before fit and before test, and setup parses once)."""
        for train in (True, False):
            self._ensure_files(train, self.download)

    def _device(self) -> torch.device:
        if self.on_device and self.trainer is not None:
            return self.trainer.strategy.root_device
        return torch.device("cpu")

    def setup(self, stage: str | None = None) -> None:
        device = self._device()
        if stage in (None, "fit", "validate") and "train" not in self.tensors:
            dataset = self._load(train=True)
            images = normalise(dataset.data, self.mean, self.std).to(device)
            labels = dataset.targets.to(device)
            train_idx, val_idx = split_indices(len(labels), self.val_fraction, self.split_seed)
            train_idx, val_idx = train_idx.to(device), val_idx.to(device)
            self.tensors["train"] = TensorDataset(images[train_idx], labels[train_idx])
            self.tensors["val"] = TensorDataset(images[val_idx], labels[val_idx])
        if stage in (None, "test", "predict") and "test" not in self.tensors:
            dataset = self._load(train=False)
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
        """Augment training batches, batched on the training device; other splits pass as they are."""
        if self.augment is not None and self.trainer is not None and self.trainer.training:
            images, labels = batch
            return self.augment(images), labels
        return batch
