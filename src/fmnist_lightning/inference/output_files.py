"""Files written whole or not at all: predict's rows, export's model files, results' tables,
training's checkpoints, metrics.csv rewound for a resume, the JSON records of runs and
ensembles.

:func:`write_atomically` writes bytes serialised beforehand to a temporary file beside the
target, fsyncs it and moves it over the target with ``os.replace``, atomic within one
filesystem: an error (a full disk included) or an interrupt leaves the old file as it was and
no temporary behind. :func:`check_output` refuses, before any work, an output that cannot be
created, that would replace one of the command's inputs, or that exists already.
"""

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from fmnist_lightning.errors import Failed, UsageError

# A file being written: .<name>.<pid>.tmp beside the target.
TEMPORARY_SUFFIX = ".tmp"


class OutputFileError(Failed, OSError):
    """An output file that cannot be written where it was asked for (exit status 1)."""


def check_writable(path: Path | str) -> None:
    """Raise OutputFileError, in one line naming the obstacle, unless a file can be created
    at ``path`` (with the folders it needs). Nothing is left behind."""
    path = Path(path).absolute()
    if path.is_dir():
        raise OutputFileError(f"cannot write '{path}': it is a folder")
    folder = next(p for p in path.parents if p.exists())
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
    for candidate in inputs:
        if os.path.exists(path) and os.path.exists(candidate) and os.path.samefile(path, candidate):
            raise OutputFileError(
                f"'{path}' is the input '{candidate}': writing there would replace it"
            )


def check_output(path: Path | str, inputs: Iterable[Path | str], overwrite: bool) -> None:
    """The checks of a command's ``--output`` before its work, as UsageErrors (exit status 2);
    an output that is an input is refused whatever ``--overwrite`` says."""
    try:
        check_writable(path)
        check_not_an_input(path, inputs)
    except OutputFileError as error:
        raise UsageError(f"{error}; choose another --output.") from None
    if Path(path).exists() and not overwrite:
        raise UsageError(
            f"'{path}' already exists; pass --overwrite to replace it, or choose another --output."
        )


def write_atomically(path: Path | str, data: bytes | memoryview | str) -> None:
    """Make ``path`` hold ``data`` (text is written as UTF-8), or, on any error, leave it as it
    was and no temporary file. An OSError (a full disk, a quota, a read-only folder) becomes
    one OutputFileError naming the file, the size being written and what was kept."""
    path = Path(path)
    data = data.encode() if isinstance(data, str) else data
    temporary = path.with_name(f".{path.name}.{os.getpid()}{TEMPORARY_SUFFIX}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())  # a power loss cannot leave a renamed empty file
        os.replace(temporary, path)
    except OSError as error:
        kept = f"'{path.name}' is kept as it was" if path.exists() else "nothing was written"
        size = len(data)
        size = f"{size} bytes" if size < 1000 else f"{size / 1e3:.1f} kB"
        size = f"{len(data) / 1e6:.1f} MB" if len(data) >= 1e6 else size
        raise OutputFileError(
            f"could not write '{path}' ({size}): {error.strerror or error}; {kept}"
        ) from error
    finally:
        temporary.unlink(missing_ok=True)
