"""Shared fixtures: small synthetic Fashion-MNIST files in torchvision's IDX layout.

The synthetic images are learnable (each class lights up its own block of pixels, plus
noise), so short fits on them show real learning while the real loading code runs.
"""

import os
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from fmnist_lightning.config import CONFIG_DIR, register_resolvers
from fmnist_lightning.data import FashionMNISTDataModule

IMAGE_SIZE = 28
NUM_CLASSES = 10


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array in the IDX format of the MNIST files (big-endian header)."""
    magic = 0x0800 | array.ndim
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def synthetic_split(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % NUM_CLASSES
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(count, IMAGE_SIZE, IMAGE_SIZE))
    for index, label in enumerate(labels):
        row, col = divmod(int(label), 5)
        images[index, 4 + row * 12 : 12 + row * 12, 1 + col * 5 : 6 + col * 5] += 180
    return images.clip(0, 255).astype(np.uint8), labels.astype(np.uint8)


def write_fashion_mnist(root: Path, train: int = 400, test: int = 100) -> Path:
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, count, seed in (("train", train, 0), ("t10k", test, 1)):
        images, labels = synthetic_split(count, seed)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root


def make_datamodule(root: Path, **changes) -> FashionMNISTDataModule:
    """A data module over ``root`` with small batches and no download; ``changes`` override."""
    settings = dict(
        root=str(root),
        batch_size=32,
        eval_batch_size=64,
        val_fraction=0.2,
        split_seed=0,
        shuffle_seed=0,
        mean=0.286,
        std=0.353,
        download=False,
        on_device=False,
    )
    return FashionMNISTDataModule(**{**settings, **changes})


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with 400 training and 100 test images."""
    return write_fashion_mnist(tmp_path_factory.mktemp("fmnist"))


@pytest.fixture(scope="session")
def real_data_root() -> Path:
    root = os.environ.get("FMNIST_DATA_DIR")
    if not root or not (Path(root) / "FashionMNIST" / "raw").is_dir():
        pytest.skip(
            "real Fashion-MNIST not available: set FMNIST_DATA_DIR to a folder holding FashionMNIST/raw/"
        )
    return Path(root)


def tiny_overrides(data_root: Path, run_dir: Path) -> list[str]:
    """Overrides for fast fits on synthetic data: small batches, two epochs, fp32 for stable numbers."""
    return [
        f"data.root={data_root}",
        f"paths.run_dir={run_dir}",
        "data.batch_size=32",
        "data.eval_batch_size=64",
        "trainer.max_epochs=2",
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        "trainer.log_every_n_steps=1",
        "trainer.enable_model_summary=false",
        "callbacks.progress_bar=null",
    ]


@pytest.fixture
def compose_train() -> Callable[..., DictConfig]:
    """Compose the training config through Hydra's compose API, as the entry point would."""
    register_resolvers()

    def _compose(overrides: list[str]) -> DictConfig:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            return compose(config_name="train", overrides=overrides)

    return _compose


@pytest.fixture(scope="session")
def tiny_checkpoint(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real Lightning checkpoint of a small classifier fitted for a few seconds on synthetic data."""
    import lightning as L

    from fmnist_lightning.data import CLASS_NAMES, FashionMNISTDataModule
    from fmnist_lightning.module import FashionMNISTClassifier

    L.seed_everything(0)
    mean, std = 0.286, 0.353
    datamodule = FashionMNISTDataModule(
        root=str(synthetic_root), batch_size=32, eval_batch_size=100, val_fraction=0.2,
        split_seed=0, shuffle_seed=0, mean=mean, std=std, download=False, on_device=False,
    )  # fmt: skip
    module = FashionMNISTClassifier(
        model={
            "_target_": "fmnist_lightning.network.VGGStyleCNN",
            "blocks": [[8], [16]],
            "dense": [32],
            "dropout": 0.0,
            "channels_last": True,
        },
        optimizer={"_target_": "torch.optim.Adam", "lr": 3e-3},
        scheduler=None,
        label_smoothing=0.0,
        class_names=list(CLASS_NAMES),
        mean=mean,
        std=std,
    )
    trainer = L.Trainer(
        max_steps=6, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(module, datamodule=datamodule)
    path = tmp_path_factory.mktemp("checkpoint") / "tiny.ckpt"
    trainer.save_checkpoint(path)
    return path
