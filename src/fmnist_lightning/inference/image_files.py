"""The image files that command-line inputs name: files, folders and glob patterns.

Each image is listed once, by the first path that names it. ``**`` does not descend into
symlinked folders (pathlib's glob, like ``find``), so a link to a parent folder is no loop.
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


def glob_files(start: Path, pattern: str, hidden: bool = False) -> list[str]:
    """The files under ``start`` a pattern matches, sorted; with a dot below ``start`` only if
    ``hidden`` (as the shell, and glob.glob)."""
    return sorted(
        str(path)
        for path in start.glob(pattern)
        if path.is_file()
        and (hidden or not any(p[0] == "." for p in path.relative_to(start).parts))
    )


def find_images(inputs: list[str], recursive: bool = False) -> tuple[list[str], dict[str, str]]:
    """The image files the inputs name, in order and each once, and an error for each input
    that names none."""
    unique, errors = {}, {}  # each file once, by its resolved path: the first path to it kept
    for entry in inputs:
        path, parts = Path(entry), Path(entry).parts
        found, why = [], "no such file or folder"
        if path.is_dir():  # its image files by extension, hidden ones left out
            found = glob_files(path, "**/*" if recursive else "*")
            found = [file for file in found if Path(file).suffix.lower() in IMAGE_EXTENSIONS]
            why = "folder holds no image files"
            why += "" if recursive else " (--recursive searches its subfolders)"
        elif path.exists():
            found = [entry]  # named explicitly: tried whatever its extension or kind
        elif glob.has_magic(entry):
            magic = next(i for i, part in enumerate(parts) if glob.has_magic(part))
            try:  # a dot in the pattern's own parts asks for hidden files
                hidden = any(part.startswith(".") for part in parts[magic:])
                found = glob_files(Path(*parts[:magic]), "/".join(parts[magic:]), hidden)
            except ValueError:  # "a**b", which pathlib refuses: glob's reading, without recursion
                found = sorted(file for file in glob.glob(entry) if Path(file).is_file())
        for file in found:
            unique.setdefault(os.path.realpath(file), file)
        if not found:
            errors[entry] = why
    return list(unique.values()), errors
