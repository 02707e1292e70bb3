"""Files written whole or not at all: predict's rows, export's model files, results' tables,
training's checkpoints, metrics.csv rewound for a resume, the JSON records of runs.

:func:`check_writable` answers, before any work, whether a file can be created where it is
asked for (its folder a file, read-only, ...); :func:`check_not_an_input` refuses an output
that would replace one of the command's inputs. :func:`write_atomically` writes bytes
serialised beforehand to a temporary file beside the target, fsyncs it and moves it over the
target with ``os.replace``, atomic within one filesystem. An error (a full disk included), an
interrupt or a failed check leaves the old file as it was and no temporary behind.
"""

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

# A file being written: .<name>.<pid>.tmp beside the target.
TEMPORARY_SUFFIX = ".tmp"


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


def check_not_an_input(path: Path | str, inputs: Iterable[Path | str]) -> None:
    """Raise OutputFileError when ``path`` is one of ``inputs`` (the same file, also through a
    link): writing it would replace what the command reads."""
    if not os.path.exists(path):
        return
    for candidate in inputs:
        if os.path.exists(candidate) and os.path.samefile(path, candidate):
            raise OutputFileError(
                f"'{path}' is the input '{candidate}': writing there would replace it"
            )


def temporary_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}{TEMPORARY_SUFFIX}")


def size_text(count: int) -> str:
    """A byte count for people: 812 bytes, 4.2 kB, 17.0 MB."""
    if count < 1000:
        return f"{count} bytes"
    return f"{count / 1e3:.1f} kB" if count < 1e6 else f"{count / 1e6:.1f} MB"


def write_atomically(path: Path | str, data: bytes | memoryview) -> None:
    """Make ``path`` hold ``data``, or, on any error, leave it as it was and no temporary file.

    An OSError (a full disk, a quota, a read-only folder) becomes one OutputFileError naming
    the file, the size being written and what was kept.
    """
    path = Path(path)
    temporary = temporary_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())  # a power loss cannot leave a renamed empty file
        os.replace(temporary, path)
    except OSError as error:
        kept = f"'{path.name}' is kept as it was" if path.exists() else "nothing was written"
        raise OutputFileError(
            f"could not write '{path}' ({size_text(len(data))}): {error.strerror or error}; {kept}"
        ) from error
    finally:
        temporary.unlink(missing_ok=True)
