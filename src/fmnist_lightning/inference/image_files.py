"""The image files that command-line inputs name: files, folders and glob patterns.

Each image is listed once, however many ways it is reached (two patterns, a symlink to its
folder): the first path that names it is kept. ``**`` (in a pattern, or ``--recursive`` for
a folder) does not descend into symlinked folders, as pathlib's glob and ``find`` do not, so
a link to a parent folder (a loop) is not followed forty levels deep. Names are shown with
:func:`display_path`, which also prints a file name that is not UTF-8.
"""

import glob
import os
from pathlib import Path

from PIL import Image

# Extensions of the formats Pillow can open: .png, .jpg, .jpeg, .gif, .bmp, .tif, .webp...
IMAGE_EXTENSIONS = frozenset(
    extension for extension, name in Image.registered_extensions().items() if name in Image.OPEN
)


def display_path(path: str | Path) -> str:
    """A path as text that any output can hold: bytes of a file name that are not UTF-8
    (kept by Python as surrogates) are written as ``\\xe9``."""
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")


def is_hidden(path: Path, start: Path) -> bool:
    """Whether a part of ``path`` below ``start`` starts with a dot."""
    return any(part.startswith(".") for part in path.relative_to(start).parts)


def pattern_files(pattern: str) -> list[str]:
    """The files a glob pattern matches, sorted; names starting with a dot only where the
    pattern itself has a part that does (as the shell, and glob.glob)."""
    parts = Path(pattern).parts
    first_magic = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    start = Path(*parts[:first_magic])
    hidden_asked = any(part.startswith(".") for part in parts[first_magic:])
    try:
        matches = list(start.glob("/".join(parts[first_magic:])))
    except ValueError:  # "a**b", which pathlib refuses: glob's reading, without recursion
        return sorted(path for path in glob.glob(pattern) if Path(path).is_file())
    return sorted(
        str(path)
        for path in matches
        if path.is_file() and (hidden_asked or not is_hidden(path, start))
    )


def find_images(inputs: list[str], recursive: bool = False) -> tuple[list[str], dict[str, str]]:
    """The image files the inputs name, in order and each once, and an error for each input
    that names none."""
    files: list[str] = []
    errors: dict[str, str] = {}
    for entry in inputs:
        path = Path(entry)
        if path.is_dir():  # its image files by extension, hidden ones left out
            found = sorted(
                str(file)
                for file in path.glob("**/*" if recursive else "*")
                if file.suffix.lower() in IMAGE_EXTENSIONS
                and not is_hidden(file, path)
                and file.is_file()
            )
            files += found
            if not found:
                errors[entry] = "folder holds no image files" + (
                    "" if recursive else " (--recursive searches its subfolders)"
                )
        elif path.exists():
            files.append(entry)  # named explicitly: tried whatever its extension or kind
        elif glob.has_magic(entry) and (matches := pattern_files(entry)):
            files += matches
        else:
            errors[entry] = "no such file or folder"
    # Each file once, by its resolved path: later paths to a file already listed are dropped.
    unique: dict[str, str] = {}
    for file in files:
        unique.setdefault(os.path.realpath(file), file)
    return list(unique.values()), errors
