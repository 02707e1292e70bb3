"""The four IDX files of Fashion-MNIST, and checks cheap enough for every run (< 1 ms), so
that a damaged file gets a sentence instead of the parser's reshape error. torchvision's
MD5s are of the .gz downloads, and hashing costs more than parsing: left to downloads."""

import gzip
import os
import stat
import tempfile
import zlib
from pathlib import Path

import numpy as np
from filelock import FileLock
from torchvision.datasets import FashionMNIST

from fmnist_lightning.errors import UsageError

CLASS_NAMES: tuple[str, ...] = tuple(FashionMNIST.classes)
RAW_FILES = tuple(
    f"{s}-{k}-ubyte" for s in ("train", "t10k") for k in ("images-idx3", "labels-idx1")
)
HOLDER = "data.root (or FMNIST_DATA_DIR) at a folder that holds"
REDO = f"so that the next run downloads it (data.download=true, needs internet), or point {HOLDER}"


class DataError(UsageError):
    """The dataset on disk is missing, unreadable or corrupt, or its split leaves no batch."""


def raw_folder(root: Path) -> Path:
    return root / "FashionMNIST" / "raw"


def not_found(root: Path, reason: str, missing: list[str]) -> DataError:
    names = ", ".join(missing)
    message = f"Fashion-MNIST was not found under data root '{root}' and could not be downloaded"
    return DataError(f"{message} ({reason}). Missing: {names}. Point {HOLDER} FashionMNIST/raw/.")


def damaged(path: Path, problem: str, files: str = "it") -> DataError:
    message = f"The Fashion-MNIST file '{path}' is damaged: {problem}"
    return DataError(f"{message}. Delete {files} {REDO} a good copy.")


def unreadable(path: Path, kind: str) -> DataError:
    fix = "chmod -R u+rX" if kind == "folder" else "chmod u+r"
    message = f"The data {kind} '{path}' cannot be read (permission denied)"
    return DataError(f"{message}: {fix} '{path}', or point {HOLDER} a readable copy.")


def missing_files(root: Path) -> list[str]:
    """The IDX files not there, once each folder on the way and each file there is what it
    should be, and readable (reading a FIFO would block for ever). One stat each."""
    raw, absent = raw_folder(root), set()
    for path in (root, root / "FashionMNIST", raw, *(raw / name for name in RAW_FILES)):
        try:
            mode = path.stat().st_mode  # a symlink counts as what it names
        except FileNotFoundError:
            absent.add(path)  # reported, or downloaded, by the caller
            continue
        except PermissionError as error:  # its folder cannot be searched
            raise unreadable(path.parent, "folder") from error
        folder, wanted = stat.S_ISDIR(mode), "file" if path.parent == raw else "folder"
        if not (stat.S_ISREG(mode) if wanted == "file" else folder):
            kind = {stat.S_IFREG: "file", stat.S_IFDIR: "directory", stat.S_IFIFO: "FIFO"}
            found = kind.get(stat.S_IFMT(mode), "special file")
            message = f"'{path}' is a {found}, but it should be a {wanted}"
            raise DataError(f"{message}. Move it away {REDO} FashionMNIST/raw/.")
        if not os.access(path, os.R_OK | os.X_OK if folder else os.R_OK):
            raise unreadable(path, "folder" if folder else "file")
    return [name for name in RAW_FILES if raw / name in absent]


def ensure_files(root: Path, download: bool) -> int:
    """Download the four files if missing and allowed, check them (cheap: nothing is
    parsed), return the number of training images."""
    # Runs side by side on a fresh folder would otherwise read each other's half-unpacked
    # files. The lock is in the temporary folder, so that a shared or read-only data folder
    # is never written to; 0o666 lets another user's runs take it too.
    key = f"{zlib.crc32(str(root.resolve()).encode()):08x}"  # roots that collide just wait
    with FileLock(Path(tempfile.gettempdir()) / f"fmnist-lightning-data-{key}.lock", mode=0o666):
        missing = missing_files(root)
        gz_files = [raw_folder(root) / f"{name}.gz" for name in missing]
        if missing and not download:
            reason = "downloading is off: data.download=false"
            if any(path.is_file() for path in gz_files):
                reason += "; the .gz files are there, data.download=true unpacks them offline"
            raise not_found(root, reason, missing)
        if missing:
            try:  # torchvision downloads (or unpacks) all four files and checks the MD5s
                FashionMNIST(str(root), train=True, download=True)
            except RuntimeError as error:  # a failed download, or a .gz file cut short
                for path in filter(Path.is_file, gz_files):
                    try:  # seeking to the end unpacks it chunk by chunk, never whole in memory
                        with gzip.open(path) as stream:
                            stream.seek(0, os.SEEK_END)
                    except (EOFError, OSError, zlib.error) as cause:
                        size = path.stat().st_size
                        problem = f"it is {size:,} bytes long and does not unpack ({cause})"
                        raise damaged(path, problem) from cause
                raise not_found(root, str(error), missing) from error
        counts = {split: verify_split(root, split) for split in ("train", "t10k")}
        return counts["train"]


def read_idx_shape(path: Path, ndim: int) -> tuple[int, ...]:
    header = np.fromfile(path, dtype=">u4", count=1 + ndim)  # missing_files made sure it reads
    size = path.stat().st_size
    if len(header) < 1 + ndim:
        problem = f"it is {size} bytes long, shorter than its {4 * (1 + ndim)}-byte header"
        raise damaged(path, problem)
    magic, *shape = header.tolist()
    if magic != 0x0800 | ndim:
        wanted = f"0x{0x0800 | ndim:08x} (unsigned bytes, {ndim} dimension{'s' * (ndim > 1)})"
        raise damaged(path, f"its magic number is 0x{magic:08x}, not {wanted}")
    expected = 4 * (1 + ndim) + int(np.prod(shape))
    if size != expected:
        header = f"its header describes {'x'.join(map(str, shape))} values ({expected:,} bytes)"
        problem = f"it is {size:,} bytes long, but {header}: the file is truncated or altered"
        raise damaged(path, problem)
    return tuple(shape)


def verify_split(root: Path, split: str) -> int:
    """Check one split's two files before torchvision parses them; return its image count."""
    images_path, labels_path = (raw_folder(root) / n for n in RAW_FILES if n.startswith(split))
    count, height, width = read_idx_shape(images_path, ndim=3)
    (label_count,) = read_idx_shape(labels_path, ndim=1)
    if (height, width) != (28, 28):
        raise damaged(images_path, f"its images are {height}x{width}, not 28x28")
    if count != label_count:
        problem = f"it holds {count:,} images but '{labels_path}' holds {label_count:,} labels"
        raise damaged(images_path, problem, files="both files")
    labels = np.fromfile(labels_path, dtype=np.uint8, offset=8)
    bad = np.flatnonzero(labels >= len(CLASS_NAMES))
    if bad.size:
        first = f"the first, at index {bad[0]}, is {labels[bad[0]]}"
        wrong = f"{bad.size:,} of {labels.size:,} are not ({first})"
        raise damaged(labels_path, f"labels must be 0..{len(CLASS_NAMES) - 1}, but {wrong}")
    return count
