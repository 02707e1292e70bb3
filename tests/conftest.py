"""Shared fixtures: small synthetic Fashion-MNIST files, the real data if present, a trained checkpoint.

Helpers (synthetic data, composing configs, faults) live in the ``helpers`` package.
"""

import os
from pathlib import Path

# `make test` runs two pytest-xdist workers, one per core of the CI machine: one torch thread
# each, also in the commands the tests start, so that they share the cores instead of
# thrashing OpenMP. Set before torch is imported; an explicit setting wins.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")

import pytest  # noqa: E402

from helpers.data import write_fashion_mnist


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


@pytest.fixture(scope="session")
def tiny_checkpoint(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real Lightning checkpoint of a small classifier fitted for a few seconds on synthetic data."""
    import lightning as L

    from fmnist_lightning.data.datamodule import FashionMNISTDataModule
    from fmnist_lightning.data.files import CLASS_NAMES
    from fmnist_lightning.models.module import FashionMNISTModule

    L.seed_everything(0)
    mean, std = 0.286, 0.353
    datamodule = FashionMNISTDataModule(
        root=str(synthetic_root), batch_size=32, eval_batch_size=100, val_fraction=0.2,
        split_seed=0, shuffle_seed=0, mean=mean, std=std, download=False, on_device=False,
    )  # fmt: skip
    module = FashionMNISTModule(
        net={
            "_target_": "fmnist_lightning.models.vgg.VGGStyleCNN",
            "blocks": [[8], [16]],
            "dense": [32],
            "dropout": 0.0,
        },
        optimizer={"_target_": "torch.optim.Adam", "lr": 3e-3},
        scheduler=None,
        label_smoothing=0.0,
        class_names=list(CLASS_NAMES),
        mean=mean,
        std=std,
        channels_last=True,
    )
    trainer = L.Trainer(
        max_steps=6, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(module, datamodule=datamodule)
    path = tmp_path_factory.mktemp("checkpoint") / "tiny.ckpt"
    trainer.save_checkpoint(path)
    return path
