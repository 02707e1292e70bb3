"""The four IDX files of Fashion-MNIST: where they live, and checks that name what is wrong.

The checks are cheap enough for every run (< 1 ms: headers, sizes and the labels), so that
a damaged file gets a sentence instead of a reshape error from the parser. The MD5s that
torchvision knows are of the .gz downloads, not of the files it reads, and hashing them
would cost more than parsing the data (~0.2 s), so they are left to downloads.
"""

import gzip
import hashlib
import math
import os
import stat
import struct
import tempfile
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from filelock import FileLock
from torchvision.datasets import FashionMNIST

CLASS_NAMES: tuple[str, ...] = tuple(FashionMNIST.classes)
RAW_FILES: tuple[str, ...] = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
IMAGE_SHAPE = (28, 28)


class DataError(RuntimeError):
    """The dataset on disk is missing, unreadable or corrupt; the message says what to do."""


class DataNotFoundError(DataError):
    """The dataset is neither on disk nor downloadable."""


class CorruptDataError(DataError):
    """A dataset file that is truncated or altered."""


def raw_folder(root: Path) -> Path:
    return root / "FashionMNIST" / "raw"


def files_lock(root: Path) -> FileLock:
    """A lock for checking and unpacking the files of one data root, across processes.

    Runs started side by side on a fresh folder (a sweep on a parallel launcher, several
    runs on one GPU machine) would otherwise all unpack the .gz files at once and read each
    other's half-written files. The lock file lives in the temporary folder, named after the
    root, so that a shared or read-only data folder is never written to.
    """
    key = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16]
    # 0o666: another user's runs on the same data root can take the lock too.
    return FileLock(Path(tempfile.gettempdir()) / f"fmnist-lightning-data-{key}.lock", mode=0o666)


def split_files(train: bool) -> tuple[str, str]:
    """The (images, labels) file names of the training or the test split."""
    prefix = "train" if train else "t10k"
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def missing_data_message(root: Path, reason: str, missing: list[str] | None = None) -> str:
    expected = "\n".join(f"  {raw_folder(root) / name}" for name in RAW_FILES)
    missing_line = f"Missing: {', '.join(missing)}.\n" if missing else ""
    return (
        f"Fashion-MNIST was not found under data root '{root}' and could not be downloaded "
        f"({reason}).\n{missing_line}Expected these four files (the .gz versions are also accepted):\n{expected}\n"
        "Point the project at a folder that holds FashionMNIST/raw/, either with the "
        "override data.root=/path/to/data or the environment variable FMNIST_DATA_DIR."
    )


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


# What a path is when it is not a regular file, for the messages.
SPECIAL_FILE_KINDS = (
    (stat.S_ISDIR, "directory"),
    (stat.S_ISFIFO, "FIFO"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)


def special_kind(mode: int) -> str | None:
    """What a file of ``st_mode`` is ("directory", "FIFO", ...), or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((kind for is_kind, kind in SPECIAL_FILE_KINDS if is_kind(mode)), "special file")


def not_a_file(path: Path, kind: str) -> DataError:
    return DataError(
        f"'{path}' is a {kind}, not a file: the data needs the IDX file itself there. Remove "
        "it so that the next run downloads the file (data.download=true, needs internet), or "
        "point data.root (or FMNIST_DATA_DIR) at a folder that holds the four files."
    )


def check_readable(root: Path) -> None:
    """Raise DataError for a data folder or file that exists but cannot be read, or for a
    directory, FIFO or other special file where an IDX file should be (reading a FIFO
    would block for ever)."""
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
        try:
            mode = (raw / name).stat().st_mode  # follows a symlink to what it names
        except OSError:
            continue  # missing (or a dangling link): reported, or downloaded, later
        kind = special_kind(mode)
        if kind:
            raise not_a_file(raw / name, kind)
        if not os.access(raw / name, os.R_OK):
            raise unreadable(raw / name, "file")


def missing_files(root: Path) -> list[str]:
    return [name for name in RAW_FILES if not (raw_folder(root) / name).is_file()]


def check_gz_files(root: Path, names: Iterable[str]) -> None:
    """Raise CorruptDataError for a .gz file of ``names`` that does not unpack to its end (a
    download cut short): torchvision would take it for a missing file and try to download."""
    for path in (raw_folder(root) / f"{name}.gz" for name in names):
        if not path.is_file():
            continue
        try:
            with gzip.open(path) as file:
                while file.read(1 << 20):
                    pass
        except (EOFError, zlib.error, gzip.BadGzipFile) as error:
            raise damaged(
                path, f"it is {path.stat().st_size:,} bytes long and does not unpack ({error})"
            ) from error


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


def verify_split(root: Path, train: bool) -> int:
    """Check one split's two IDX files before torchvision parses them (raise CorruptDataError);
    return how many images the split holds."""
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
    return count
