"""Files written whole or not at all, and the checks of a command's ``--output`` before its work.

:func:`write_atomically` writes to a temporary file beside the target, fsyncs it and moves it
over the target with ``os.replace`` (atomic within one filesystem): an error, a full disk
included, or an interrupt leaves the old file as it was and no temporary behind.
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


def check_not_an_input(path: Path | str, inputs: Iterable[Path | str]) -> None:
    """Refuse an output that is one of the inputs (also through a link): it would replace them."""
    for candidate in inputs:
        if os.path.exists(path) and os.path.exists(candidate) and os.path.samefile(path, candidate):
            raise OutputFileError(
                f"'{path}' is the input '{candidate}': writing there would replace it"
            )


def check_output(path: Path | str, inputs: Iterable[Path | str], overwrite: bool) -> None:
    """Refuse (UsageError) an ``--output`` that cannot be created, is an input (whatever
    ``--overwrite`` says) or exists; before the work, not after it."""
    absolute = Path(path).absolute()
    folder = next(p for p in absolute.parents if p.exists())
    cannot, other = f"cannot write '{absolute}':", "; choose another --output."
    if absolute.is_dir():
        raise UsageError(f"{cannot} it is a folder{other}")
    if not folder.is_dir():
        raise UsageError(f"{cannot} '{folder}' is a file, not a folder{other}")
    try:  # a real attempt: os.access says yes to root on a read-only filesystem
        os.rmdir(tempfile.mkdtemp(dir=folder, prefix=".fmnist-write-check-"))
        check_not_an_input(path, inputs)
    except OutputFileError as error:
        raise UsageError(f"{error}{other}") from None
    except OSError as error:
        why = "is not writable" if isinstance(error, PermissionError) else f"({error.strerror})"
        raise UsageError(f"{cannot} '{folder}' {why}{other}") from error
    if absolute.exists() and not overwrite:
        raise UsageError(
            f"'{path}' already exists; pass --overwrite to replace it, or choose another --output."
        )


def write_atomically(path: Path | str, data: bytes | memoryview | str, hint: str = "") -> None:
    """Make ``path`` hold ``data`` (text as UTF-8), or on any error leave it as it was: an
    OSError becomes one OutputFileError naming the file, the size and what was kept, + ``hint``."""
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
        size = f"{len(data)} bytes" if len(data) < 1000 else f"{len(data) / 1e3:.1f} kB"
        size = f"{len(data) / 1e6:.1f} MB" if len(data) >= 1e6 else size
        raise OutputFileError(
            f"could not write '{path}' ({size}): {error.strerror or error}; {kept}{hint}"
        ) from error
    finally:
        temporary.unlink(missing_ok=True)
