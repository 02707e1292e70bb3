"""Output files of the inference commands (predict's rows, export's model files), written whole
or not at all.

:func:`check_writable` answers, before any work, whether a file can be created where it is
asked for (its folder a file, read-only, ...). :func:`staged` hands out a temporary path
beside the target: the caller writes (and checks) the file there, and only when the block
ends without an error is it moved over the target with ``os.replace``, atomic within one
filesystem. An error, an interrupt or a failed check leaves the old file as it was and no
temporary behind.
"""

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# A file being written: .<stem>.<pid>.tmp<suffix> beside the target; the suffix is kept
# for writers that look at it (ONNX, TorchScript).
TEMPORARY_MARK = ".tmp"


class OutputFileError(OSError):
    """An output file that cannot be written where it was asked for."""


def nearest_existing(path: Path) -> Path:
    """The path itself or its closest ancestor that exists (the root always does)."""
    return next(p for p in (path, *path.parents) if p.exists())


def check_writable(path: Path | str) -> None:
    """Raise OutputFileError, in one line naming the obstacle, unless a file can be created
    at ``path`` (with the folders it needs). Nothing is left behind."""
    path = Path(path).absolute()
    if path.is_dir():
        raise OutputFileError(f"cannot write '{path}': it is a folder")
    folder = nearest_existing(path.parent)
    if not folder.is_dir():
        raise OutputFileError(f"cannot write '{path}': '{folder}' is a file, not a folder")
    try:  # a real attempt: os.access says yes to root on a read-only filesystem
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".fmnist-write-check-")
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        why = "is not writable" if isinstance(error, PermissionError) else f"({error.strerror})"
        raise OutputFileError(f"cannot write '{path}': '{folder}' {why}") from error


def temporary_path(path: Path) -> Path:
    return path.with_name(f".{path.stem}.{os.getpid()}{TEMPORARY_MARK}{path.suffix}")


def sync(path: Path) -> None:
    """Flush a file's data to disk, so that a power loss cannot leave a renamed empty file."""
    with open(path, "rb") as file:
        os.fsync(file.fileno())


@contextmanager
def staged(path: Path | str) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; moved over ``path`` when the block
    succeeds, removed when it raises (the old ``path`` then stays as it was)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputFileError(f"cannot write '{path}': {error.strerror or error}") from error
    temporary = temporary_path(path)
    try:
        yield temporary
        sync(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
