"""Turn an image file of any size and mode into a Fashion-MNIST-like 28x28 uint8 array.

Fashion-MNIST shows light garments on black, 28x28, grayscale; a photo or product shot is
usually the opposite (dark on white), bigger and in colour. So: decode (first frame, EXIF
rotation applied, decompression bombs refused), take grayscale in [0, 1] (transparency
composited onto white, like a product shot on a white page), shrink or enlarge the longer
side to 28 on a canvas of the border's intensity, and invert when that border is light.
A dataset image saved as PNG passes through unchanged.

And the image files that command-line inputs name (:func:`find_images`): files, folders and
glob patterns, each image listed once, by the first path that names it. ``**`` does not
descend into symlinked folders (pathlib's glob, like ``find``), so a link to a parent folder
is no loop.
"""

import glob
import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from fmnist_lightning.errors import UsageError

IMAGE_SIZE = 28
# Pillow's own decompression-bomb threshold (~89 megapixels; a 60 MP photo is fine).
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
LIGHT_BACKGROUND_THRESHOLD = 0.5

ImageSource = str | Path | bytes | BinaryIO
# Extensions of the formats Pillow can open: .png, .jpg, .jpeg, .gif, .bmp, .tif, .webp...
IMAGE_EXTENSIONS = frozenset(
    extension for extension, name in Image.registered_extensions().items() if name in Image.OPEN
)


class ImageReadError(UsageError):
    """An input that cannot be read as an image: missing, unreadable, corrupt or too large."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"cannot read image '{source}': {reason}")
        self.source, self.reason = source, reason


def display_path(path: str | Path) -> str:
    """A path as text that any output can hold: bytes of a file name that are not UTF-8
    (kept by Python as surrogates) are written as ``\\xe9``."""
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")


def describe_source(source: ImageSource) -> str:
    if isinstance(source, str | Path):
        return display_path(source)
    return "<bytes>" if isinstance(source, bytes) else getattr(source, "name", "<stream>")


def read_image(source: ImageSource, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode a file, bytes or binary stream into a loaded PIL image (first frame, upright)."""
    name = describe_source(source)
    path = Path(source) if isinstance(source, str | Path) else None
    if path and path.exists() and not path.is_file() and not path.is_dir():  # open would block
        raise ImageReadError(name, "not a regular file (a FIFO, socket or device)")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x its limit; treat that as the error it is.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
                width, height = image.size
                if width * height > max_pixels:
                    why = f"{width}x{height} pixels, over the limit of {max_pixels:,} pixels"
                    raise Image.DecompressionBombError(f"{why}; shrink it first")
                image.load()  # decode now, inside the try: truncated data fails here
                return ImageOps.exif_transpose(image)  # phones store rotation in EXIF
    except (FileNotFoundError, IsADirectoryError, PermissionError) as error:
        raise ImageReadError(name, error.strerror.lower()) from None  # "no such file or directory"
    except Image.UnidentifiedImageError:
        raise ImageReadError(name, "not an image format Pillow can decode") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageReadError(name, f"too large, a possible decompression bomb ({error})") from None
    except Exception as error:  # Pillow's decoders raise many types for corrupt data
        reason = f"corrupt, truncated or unsupported image data ({type(error).__name__}: {error})"
        raise ImageReadError(name, reason) from error


def to_grayscale(image: Image.Image) -> np.ndarray:
    """Intensities in [0, 1] as a float32 (height, width) array, 16-bit precision kept."""
    if image.mode.startswith("I"):  # 16-bit PNGs (I;16 or I), 32-bit integer TIFFs
        return np.clip(np.asarray(image, dtype=np.float32) / 65535.0, 0.0, 1.0)
    if image.mode == "F":
        pixels = np.asarray(image, dtype=np.float32)
        if not np.isfinite(pixels).all():
            raise ValueError("float image with NaN or infinite pixels")
        # Float images come as [0, 1] or [0, 255] intensities.
        return np.clip(pixels / 255.0 if pixels.max() > 1.0 else pixels, 0.0, 1.0)
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA"))
    if image.mode not in ("1", "L", "P", "RGB"):
        image = image.convert("RGB")  # CMYK, YCbCr, LAB, HSV...: via RGB
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def fit_to_square(gray: np.ndarray, fill: float, size: int = IMAGE_SIZE) -> np.ndarray:
    """Resize so the longer side is ``size`` (aspect kept), centred on a ``fill`` canvas."""
    height, width = gray.shape
    scale = size / max(height, width)
    new_width, new_height = max(1, round(width * scale)), max(1, round(height * scale))
    if (new_width, new_height) != (width, height):
        # Area averaging when shrinking: no aliasing, and exact for integer factors.
        resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
        image = Image.fromarray(np.ascontiguousarray(gray, np.float32))
        gray = np.asarray(image.resize((new_width, new_height), resample), dtype=np.float32)
    top, left = (size - new_height) // 2, (size - new_width) // 2
    margins = ((top, size - new_height - top), (left, size - new_width - left))
    return np.pad(gray, margins, constant_values=fill)


def prepare_image(
    image: Image.Image, invert: bool | None = None, source: str = "<PIL image>"
) -> np.ndarray:
    """A PIL image → 28x28 uint8, light object on black. ``invert=None`` decides by the border."""
    try:
        gray = to_grayscale(image)
    except Exception as error:  # a mode Pillow cannot convert ("La"), NaN pixels...
        raise ImageReadError(source, f"{type(error).__name__}: {error}") from error
    background = float(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]]).mean())
    square = fit_to_square(gray, fill=background)
    if background > LIGHT_BACKGROUND_THRESHOLD if invert is None else invert:
        square = 1.0 - square
    return np.clip(np.rint(square * 255.0), 0, 255).astype(np.uint8)


def load_image(
    source: ImageSource, invert: bool | None = None, max_pixels: int = MAX_PIXELS
) -> np.ndarray:
    """An image file (path, bytes or stream) → 28x28 uint8 array ready for the classifier."""
    return prepare_image(read_image(source, max_pixels), invert, describe_source(source))


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
