"""Damaged, incomplete or unreadable data gives a sentence naming the file and the fix."""

import gzip
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from torchvision.datasets import FashionMNIST

from fmnist_lightning.data.files import RAW_FILES, DataError
from fmnist_lightning.errors import UsageError
from helpers.data import make_datamodule, write_fashion_mnist, write_idx

NOBODY = 65534  # the unprivileged user of most Linux systems


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """A fresh synthetic data root per test, free to damage."""
    return write_fashion_mnist(tmp_path / "data", train=100, test=50)


def raw(root: Path, name: str) -> Path:
    return root / "FashionMNIST" / "raw" / name


def assert_names_file_and_fix(message: str, path: Path) -> None:
    assert f"'{path}'" in message
    assert "Delete" in message and "data.root" in message
    assert "shape" not in message  # not the parser's reshape error


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-5])


def wrong_magic(path: Path) -> None:
    path.write_bytes(b"\x00\x00\x08\x02" + path.read_bytes()[4:])


def shorter_than_header(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:6])


def with_trailing_bytes(path: Path) -> None:
    path.write_bytes(path.read_bytes() + b"\x00" * 7)


@pytest.mark.parametrize(
    ("damage", "name", "problem"),
    [
        (truncate, "train-images-idx3-ubyte", "the file is truncated or altered"),
        (truncate, "t10k-labels-idx1-ubyte", "the file is truncated or altered"),
        (with_trailing_bytes, "t10k-images-idx3-ubyte", "the file is truncated or altered"),
        (wrong_magic, "train-images-idx3-ubyte", "magic number is 0x00000802, not 0x00000803"),
        (shorter_than_header, "train-labels-idx1-ubyte", "shorter than its 8-byte header"),
    ],
)
@pytest.mark.parametrize("stage", ["prepare_data", "setup"])
def test_a_damaged_file_is_named_with_what_to_do(data_root, damage, name, problem, stage):
    damage(raw(data_root, name))
    datamodule = make_datamodule(data_root)
    with pytest.raises(DataError) as error:
        datamodule.prepare_data() if stage == "prepare_data" else datamodule.setup(None)
    assert problem in str(error.value)
    assert_names_file_and_fix(str(error.value), raw(data_root, name))
    assert isinstance(error.value, UsageError)  # input refused: exit status 2 in every command


def test_labels_outside_0_to_9_are_reported_with_the_first_bad_one(data_root):
    path = raw(data_root, "t10k-labels-idx1-ubyte")
    labels = np.frombuffer(path.read_bytes()[8:], dtype=np.uint8).copy()
    labels[[7, 20]] = [10, 255]
    write_idx(path, labels)
    with pytest.raises(DataError) as error:
        make_datamodule(data_root).setup("test")
    assert "labels must be 0..9, but 2 of 50 are not (the first, at index 7, is 10)" in str(
        error.value
    )
    assert_names_file_and_fix(str(error.value), path)


def test_an_image_count_that_differs_from_the_label_count_names_both_files(data_root):
    labels = raw(data_root, "train-labels-idx1-ubyte")
    write_idx(labels, np.zeros(99, dtype=np.uint8))
    with pytest.raises(DataError) as error:
        make_datamodule(data_root).setup("fit")
    message = str(error.value)
    assert "holds 100 images but" in message and f"'{labels}' holds 99 labels" in message
    assert "Delete both files" in message


def test_images_of_the_wrong_size_are_rejected(data_root):
    write_idx(raw(data_root, "t10k-images-idx3-ubyte"), np.zeros((50, 32, 32), dtype=np.uint8))
    with pytest.raises(DataError, match="its images are 32x32, not 28x28"):
        make_datamodule(data_root).setup("test")


def test_a_missing_split_lists_the_missing_files(data_root):
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        raw(data_root, name).unlink()
    with pytest.raises(DataError) as error:
        make_datamodule(data_root).prepare_data()
    message = str(error.value)
    assert "Missing: t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte." in message
    assert "data.download=false" in message and "data.root" in message


def test_an_empty_folder_lists_all_four_files(tmp_path):
    with pytest.raises(DataError) as error:
        make_datamodule(tmp_path).prepare_data()
    assert f"Missing: {', '.join(RAW_FILES)}." in str(error.value)


def test_gz_files_alone_suggest_unpacking_them(data_root):
    path = raw(data_root, "train-images-idx3-ubyte")
    path.rename(path.with_name(path.name + ".gz"))  # its name is all the check looks at
    with pytest.raises(DataError, match="data.download=true unpacks them offline"):
        make_datamodule(data_root).prepare_data()


def test_a_gz_file_cut_short_is_named_not_a_failed_download_of_another(data_root, monkeypatch):
    monkeypatch.setattr(FashionMNIST, "mirrors", [f"file://{data_root}/no-mirror/"])  # offline
    path = raw(data_root, "t10k-images-idx3-ubyte")
    packed = gzip.compress(path.read_bytes())
    gz = path.with_name(path.name + ".gz")
    gz.write_bytes(packed[: len(packed) // 2])
    path.unlink()
    with pytest.raises(DataError) as error:
        make_datamodule(data_root, download=True).prepare_data()
    assert_names_file_and_fix(str(error.value), gz)
    assert f"it is {len(packed) // 2:,} bytes long and does not unpack" in str(error.value)


def test_a_data_root_that_is_a_file_says_so(tmp_path):
    path = tmp_path / "data.zip"
    path.write_bytes(b"PK")
    with pytest.raises(
        DataError, match="is a file, but it should be a folder. Move it away"
    ) as error:
        make_datamodule(path).prepare_data()
    assert "data.root" in str(error.value)


def error_as_unprivileged_user(function: Callable[[], object]) -> str:
    """What function() raises, as 'Type: message', run by a user that permissions apply to.

    root reads any file whatever its mode, so as root the function runs in a forked child
    that first becomes 'nobody'. All it needs is already imported in the parent.
    """
    if os.geteuid() != 0:
        try:
            function()
        except Exception as error:
            return f"{type(error).__name__}: {error}"
        return "no error"
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        try:
            os.close(read_end)
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                function()
                result = "no error"
            except Exception as error:
                result = f"{type(error).__name__}: {error}"
            os.write(write_end, result.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        result = pipe.read().decode()
    os.waitpid(pid, 0)
    return result


@pytest.fixture
def shared_data_root() -> Iterator[Path]:
    """Synthetic data in a folder that any user may enter (pytest's tmp_path is root-only)."""
    folder = Path(tempfile.mkdtemp(prefix="fmnist-perm-"))
    folder.chmod(0o755)
    root = write_fashion_mnist(folder / "data", train=100, test=50)
    for path in (root, *root.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    yield root
    for path in (root, *root.rglob("*")):
        path.chmod(stat.S_IRWXU)
    shutil.rmtree(folder)


@pytest.mark.parametrize(
    ("locked", "kind"),
    [
        ("FashionMNIST/raw", "folder"),
        ("FashionMNIST", "folder"),
        (".", "folder"),
        ("FashionMNIST/raw/train-labels-idx1-ubyte", "file"),
    ],
)
def test_an_unreadable_folder_or_file_says_permission_denied(shared_data_root, locked, kind):
    make_datamodule(shared_data_root).prepare_data()  # readable first: imports all it needs
    path = (shared_data_root / locked).resolve()
    path.chmod(0)
    try:
        result = error_as_unprivileged_user(make_datamodule(shared_data_root).prepare_data)
    finally:
        path.chmod(0o755 if kind == "folder" else 0o644)
    assert result.startswith("DataError: "), result
    assert f"The data {kind} '{path}' cannot be read (permission denied)" in result
    assert "data.root" in result


@pytest.mark.slow
def test_the_cli_prints_the_data_error_without_a_stack_trace(data_root, tmp_path):
    truncate(raw(data_root, "train-images-idx3-ubyte"))
    command = [sys.executable, "-m", "fmnist_lightning.train", f"data.root={data_root}"]
    command += [f"paths.root={tmp_path / 'logs'}", "trainer.accelerator=cpu"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 2  # input refused
    assert "Traceback" not in result.stderr
    assert "\nError: The Fashion-MNIST file" in result.stderr
    assert "train-images-idx3-ubyte' is damaged" in result.stderr
    assert not list((tmp_path / "logs").rglob("*.ckpt"))


@pytest.mark.parametrize(
    ("fraction", "problem"),
    [
        (0.999999, "leaves 0 of the 100 training images for training"),
        (0.8, "leaves 20 of the 100 training images for training, fewer than one batch"),
        (0.001, "leaves no image of the 100 for validation"),
    ],
)
def test_a_val_fraction_that_starves_a_split_is_refused_before_training(
    data_root, fraction, problem
):
    with pytest.raises(DataError, match=problem) as error:
        make_datamodule(data_root, val_fraction=fraction).prepare_data()
    assert f"data.val_fraction={fraction}" in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("kind", ["directory", "FIFO"])
def test_a_directory_or_fifo_in_place_of_an_idx_file_is_named(data_root, kind):
    path = raw(data_root, "train-labels-idx1-ubyte")
    path.unlink()
    if kind == "directory":
        path.mkdir()
    else:
        os.mkfifo(path)
    signal.signal(signal.SIGALRM, lambda *_: pytest.fail("reading the data hung"))
    signal.alarm(60)
    try:
        with pytest.raises(
            DataError, match=f"'{path}' is a {kind}, but it should be a file"
        ) as error:
            make_datamodule(data_root).prepare_data()
    finally:
        signal.alarm(0)
    assert "\n" not in str(error.value)
