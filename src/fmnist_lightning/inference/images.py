"""Turn an image file of any size and mode into a Fashion-MNIST-like 28x28 uint8 array.

Fashion-MNIST shows light garments on a black background, 28x28, grayscale. A photo or
product shot is usually the opposite (dark garment on white), bigger and in colour, so:

1. decode the file (first frame of an animation; EXIF rotation applied), refusing
   decompression bombs;
2. convert to grayscale intensities in [0, 1] (8- and 16-bit, palette, CMYK...; transparent
   pixels are composited onto white, like a product shot on a white page);
3. decide from the border pixels whether the background is light;
4. shrink (area average) or enlarge (bilinear) so the longer side is 28, keeping the aspect
   ratio, and centre it on a 28x28 canvas filled with the background intensity;
5. invert when the background was light, and round to uint8.

An 8-bit grayscale 28x28 image with a dark border (a dataset image saved as PNG) passes
through unchanged. Every failure to read an image raises ImageReadError, naming the source
and the reason.
"""

import io
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from fmnist_lightning.errors import UsageError
from fmnist_lightning.inference.image_files import display_path

IMAGE_SIZE = 28
# Pillow's own decompression-bomb threshold (~89 megapixels; a 60 MP photo is fine).
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
LIGHT_BACKGROUND_THRESHOLD = 0.5

ImageSource = str | Path | bytes | BinaryIO


class ImageReadError(UsageError):
    """An input that cannot be read as an image: missing, unreadable, corrupt or too large."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"cannot read image '{source}': {reason}")
        self.source, self.reason = source, reason


def describe_source(source: ImageSource) -> str:
    if isinstance(source, str | Path):
        return display_path(source)
    return "<bytes>" if isinstance(source, bytes) else getattr(source, "name", "<stream>")


def read_image(source: ImageSource, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode a file, bytes or binary stream into a loaded PIL image (first frame, upright)."""
    name = describe_source(source)
    if isinstance(source, str | Path):
        path = Path(source)
        if path.is_dir():
            raise ImageReadError(name, "it is a directory, expected an image file")
        if path.exists() and not path.is_file():  # opening a FIFO would block for ever
            raise ImageReadError(name, "not a regular file (a FIFO, socket or device)")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x its limit; treat that as the error it is.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise Image.DecompressionBombError(
                        f"{width}x{height} is {width * height:,} pixels, more than the limit of "
                        f"{max_pixels:,} (a guard against decompression bombs); shrink it first"
                    )
                image.load()  # decode now, inside the try: truncated data fails here
                # Photos from phones store their rotation in EXIF instead of in the pixels.
                return ImageOps.exif_transpose(image)
    except FileNotFoundError:
        raise ImageReadError(name, "no such file") from None
    except PermissionError as error:
        raise ImageReadError(name, f"it cannot be read ({error.strerror})") from None
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
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image.convert("RGBA"))
    if image.mode not in ("1", "L", "P", "RGB"):
        image = image.convert("RGB")  # CMYK, YCbCr, LAB, HSV...: via RGB
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def border_mean(gray: np.ndarray) -> float:
    """Mean intensity of the outermost rows and columns."""
    return float(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]]).mean())


def has_light_background(gray: np.ndarray) -> bool:
    return border_mean(gray) > LIGHT_BACKGROUND_THRESHOLD


def fit_to_square(gray: np.ndarray, fill: float, size: int = IMAGE_SIZE) -> np.ndarray:
    """Resize so the longer side is ``size`` (aspect kept), centred on a ``fill`` canvas."""
    height, width = gray.shape
    scale = size / max(height, width)
    new_width, new_height = max(1, round(width * scale)), max(1, round(height * scale))
    if (new_width, new_height) != (width, height):
        # Area averaging when shrinking: no aliasing, and exact for integer factors.
        resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
        resized = Image.fromarray(np.ascontiguousarray(gray, np.float32)).resize(
            (new_width, new_height), resample
        )
        gray = np.asarray(resized, dtype=np.float32)
    canvas = np.full((size, size), fill, dtype=np.float32)
    top, left = (size - new_height) // 2, (size - new_width) // 2
    canvas[top : top + new_height, left : left + new_width] = gray
    return canvas


def prepare_image(
    image: Image.Image, invert: bool | None = None, source: str = "<PIL image>"
) -> np.ndarray:
    """A PIL image → 28x28 uint8, light object on black. ``invert=None`` decides by the border."""
    try:
        gray = to_grayscale(image)
    except Exception as error:  # a mode Pillow cannot convert ("La"), NaN pixels...
        raise ImageReadError(source, f"{type(error).__name__}: {error}") from error
    background = border_mean(gray)
    square = fit_to_square(gray, fill=background)
    if background > LIGHT_BACKGROUND_THRESHOLD if invert is None else invert:
        square = 1.0 - square
    return np.clip(np.rint(square * 255.0), 0, 255).astype(np.uint8)


def load_image(
    source: ImageSource, invert: bool | None = None, max_pixels: int = MAX_PIXELS
) -> np.ndarray:
    """An image file (path, bytes or stream) → 28x28 uint8 array ready for the classifier."""
    return prepare_image(read_image(source, max_pixels), invert, describe_source(source))
