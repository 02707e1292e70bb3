"""Synthetic Fashion-MNIST files (``fmnist_lightning.data.synthetic``) and a data module over them."""

from pathlib import Path

from fmnist_lightning.data.datamodule import FashionMNISTDataModule
from fmnist_lightning.data.synthetic import write_fashion_mnist, write_idx

__all__ = ["make_datamodule", "write_fashion_mnist", "write_idx"]


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
