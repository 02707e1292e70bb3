"""Files written whole or not at all (:func:`write_atomically`), and the one check that a folder
can hold a new file (:func:`unwritable`: a command's ``--output``, a run's or analysis's folder)."""

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from fmnist_lightning.errors import Failed, UsageError

TEMPORARY_SUFFIX = ".tmp"  # a file being written: .<name>.<pid>.tmp beside the target
FULL_DISK = ". Free some space or choose another --output."  # the commands' hint for --output


class OutputFileError(Failed, OSError):
    """An output file that cannot be written where it was asked for (exit status 1)."""


def unwritable(folder: Path) -> str | None:
    """Why no file can be made in the existing ``folder``, as "'folder' <why>"; None if it can."""
    if not folder.is_dir():
        return f"'{folder}' is a file, not a folder"
    try:  # a real attempt: os.access says yes to root on a read-only filesystem
        os.rmdir(tempfile.mkdtemp(dir=folder, prefix=".fmnist-write-check-"))
    except OSError as error:
        why = "is not writable" if isinstance(error, PermissionError) else f"({error.strerror})"
        return f"'{folder}' {why}"
    return None


def check_output(path: Path | str, inputs: Iterable[Path | str], overwrite: bool) -> None:
    """Refuse (UsageError) an ``--output`` that cannot be created, is an input, also through a
    link and whatever ``--overwrite`` says, or exists; before the work, not after it."""
    absolute, other = Path(path).absolute(), "; choose another --output."
    folder = next(p for p in absolute.parents if p.exists())
    if why := "it is a folder" if absolute.is_dir() else unwritable(folder):
        raise UsageError(f"cannot write '{absolute}': {why}{other}")
    for source in inputs:
        if absolute.exists() and os.path.exists(source) and os.path.samefile(absolute, source):
            why = f"'{path}' is the input '{source}': writing there would replace it"
            raise UsageError(why + other)
    if absolute.exists() and not overwrite:
        raise UsageError(f"'{path}' already exists; pass --overwrite to replace it{other}")


def write_atomically(path: Path | str, data: bytes | memoryview | str, hint: str = "") -> None:
    """Make ``path`` hold ``data`` (text as UTF-8), or on any error (a full disk, an interrupt)
    leave it as it was: a fsynced temporary file beside it, then ``os.replace`` (atomic on one
    filesystem). An OSError becomes one OutputFileError naming file, size, what was kept, ``hint``."""
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
        size = f"{len(data) / 1e3:.1f} kB" if len(data) < 1e6 else f"{len(data) / 1e6:.1f} MB"
        why = f"could not write '{path}' ({size}): {error.strerror or error}"
        raise OutputFileError(f"{why}; {kept}{hint}") from error
    finally:
        temporary.unlink(missing_ok=True)
