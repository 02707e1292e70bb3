import threading
import time
from pathlib import Path

import pytest
import torch
from torchvision.datasets import FashionMNIST

from fmnist_lightning.data import files as files_module
from fmnist_lightning.data.datamodule import (
    EpochBatchSampler,
    FashionMNISTDataModule,
    split_indices,
)
from fmnist_lightning.data.files import CLASS_NAMES, RAW_FILES, DataError, raw_folder
from helpers.data import make_datamodule, write_fashion_mnist


def test_split_is_80_20_disjoint_and_covers_everything():
    train, val = split_indices(60_000, 0.2, seed=1)
    assert (len(train), len(val)) == (48_000, 12_000)
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(60_000))


def test_split_depends_only_on_the_seed():
    assert torch.equal(split_indices(1000, 0.2, seed=3)[1], split_indices(1000, 0.2, seed=3)[1])
    assert not torch.equal(split_indices(1000, 0.2, seed=3)[1], split_indices(1000, 0.2, seed=4)[1])


def test_datamodule_reads_idx_files_into_normalised_tensors(synthetic_root):
    datamodule = make_datamodule(synthetic_root, val_fraction=0.25)
    datamodule.prepare_data()
    datamodule.setup("fit")
    datamodule.setup("test")
    train_images, train_labels = datamodule.tensors["train"].tensors
    assert train_images.shape == (300, 1, 28, 28) and train_images.dtype == torch.float32
    assert len(datamodule.tensors["val"]) == 100
    assert len(datamodule.tensors["test"]) == 100
    assert set(train_labels.tolist()) == set(range(10))
    # Normalisation is (x / 255 - mean) / std, computed once.
    raw = FashionMNIST(str(synthetic_root), train=True).data
    assert train_images.min() >= (0 - 0.286) / 0.353 - 1e-6
    assert train_images.max() <= (1 - 0.286) / 0.353 + 1e-6
    assert torch.isclose(
        train_images.mean(), ((raw.float() / 255 - 0.286) / 0.353).mean(), atol=0.05
    )


def test_validation_split_is_the_same_for_the_same_seed(synthetic_root):
    first, second, other = (make_datamodule(synthetic_root, split_seed=s) for s in (5, 5, 6))
    for datamodule in (first, second, other):
        datamodule.setup("fit")
    assert torch.equal(first.tensors["val"].tensors[1], second.tensors["val"].tensors[1])
    assert torch.equal(first.tensors["val"].tensors[0], second.tensors["val"].tensors[0])
    assert not torch.equal(first.tensors["val"].tensors[0], other.tensors["val"].tensors[0])


def test_loaders_serve_whole_batches_from_memory(synthetic_root):
    datamodule = make_datamodule(synthetic_root)
    datamodule.setup("fit")
    batches = list(datamodule.train_dataloader())
    assert len(batches) == len(datamodule.train_dataloader()) == 10  # ceil(320 / 32)
    images, labels = batches[0]
    assert images.shape == (32, 1, 28, 28) and labels.shape == (32,)
    assert sum(len(b[1]) for b in batches) == 320
    assert len(list(datamodule.val_dataloader())) == 2  # ceil(80 / 64)


def test_class_names_are_exposed():
    assert FashionMNISTDataModule.classes == CLASS_NAMES
    assert (
        CLASS_NAMES[0] == "T-shirt/top"
        and CLASS_NAMES[9] == "Ankle boot"
        and len(CLASS_NAMES) == 10
    )


def test_shuffle_order_depends_on_seed_and_epoch_only():
    def order(seed, epoch):
        sampler = EpochBatchSampler(100, 16, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        return torch.cat(list(sampler))

    assert torch.equal(order(0, 3), order(0, 3))
    assert not torch.equal(order(0, 3), order(0, 4))
    assert not torch.equal(order(0, 3), order(1, 3))
    assert sorted(order(0, 3).tolist()) == list(range(100))


def test_sampler_shards_batches_across_ranks_without_overlap():
    shards = [
        list(EpochBatchSampler(100, 10, shuffle=True, seed=0, rank=r, world_size=2)) for r in (0, 1)
    ]
    assert [len(s) for s in shards] == [5, 5]
    seen = torch.cat([torch.cat(s) for s in shards]).tolist()
    assert sorted(seen) == list(range(100))


def test_missing_data_names_root_files_and_the_fix(tmp_path):
    datamodule = make_datamodule(tmp_path / "nowhere", download=False)
    with pytest.raises(DataError) as error:
        datamodule.prepare_data()
    message = str(error.value)
    assert str(tmp_path / "nowhere") in message
    assert all(name in message for name in RAW_FILES)
    assert "data.root" in message and "FMNIST_DATA_DIR" in message


def test_failed_download_gives_the_same_clear_error(tmp_path, monkeypatch):
    # No network here: point the mirrors at a folder that does not exist, so the
    # download path runs for real and fails quickly.
    monkeypatch.setattr(FashionMNIST, "mirrors", [f"file://{tmp_path}/no-mirror/"])
    datamodule = make_datamodule(tmp_path / "empty", download=True)
    with pytest.raises(DataError, match="could not be downloaded.*Error downloading"):
        datamodule.prepare_data()


def test_runs_side_by_side_unpack_the_files_once_and_never_read_them_half_written(
    tmp_path, monkeypatch
):
    source = write_fashion_mnist(tmp_path / "source")
    fresh_root = tmp_path / "fresh"
    unpacked = []

    class SlowlyUnpackingFashionMNIST:
        """Stands in for torchvision unpacking the four .gz files: slowly, header first."""

        def __init__(self, root: str, train: bool, download: bool) -> None:
            unpacked.append(train)
            raw = raw_folder(Path(root))
            raw.mkdir(parents=True, exist_ok=True)
            for name in RAW_FILES:
                content = (raw_folder(source) / name).read_bytes()
                with (raw / name).open("wb") as file:
                    file.write(content[:16])
                    file.flush()
                    time.sleep(0.1)
                    file.write(content[16:])

    monkeypatch.setattr(files_module, "FashionMNIST", SlowlyUnpackingFashionMNIST)
    errors = []

    def prepare() -> None:
        try:
            make_datamodule(fresh_root, download=True).prepare_data()
        except Exception as error:  # collected: an exception in a thread would be lost
            errors.append(error)

    runs = [threading.Thread(target=prepare) for _ in range(3)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=60)
    assert errors == []
    assert unpacked == [True]  # the first run unpacked all four; the others found them whole
    for name in RAW_FILES:
        assert (raw_folder(fresh_root) / name).read_bytes() == (
            raw_folder(source) / name
        ).read_bytes()


def test_checking_the_files_writes_nothing_into_the_data_folder(tmp_path):
    root = write_fashion_mnist(tmp_path / "data")
    before = sorted(path.relative_to(root) for path in root.rglob("*"))
    make_datamodule(root).prepare_data()
    assert sorted(path.relative_to(root) for path in root.rglob("*")) == before
