"""Property-based tests: whatever bytes or image a user feeds the prediction path, the
result is a prediction or a clear ImageReadError, never another exception."""

import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from fmnist_lightning import load_classifier
from fmnist_lightning.inference.images import ImageReadError

FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,  # the same examples on every run, so CI is repeatable
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F", "YCbCr"]
FORMATS = ["PNG", "JPEG", "GIF", "TIFF", "BMP", "WEBP"]


@pytest.fixture(scope="module")
def classifier(tiny_checkpoint):
    return load_classifier(tiny_checkpoint)


def predict_file(classifier, data: bytes, suffix: str):
    """Write the bytes to a file and classify it, as the predict command does."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"input{suffix}"
        path.write_bytes(data)
        return classifier.predict([path])


def assert_prediction_or_clear_error(classifier, data: bytes, suffix: str) -> None:
    try:
        result = predict_file(classifier, data, suffix)
    except ImageReadError as error:
        assert "cannot read image" in str(error) and error.reason
        return
    assert result.probabilities.shape == (1, 10)
    assert torch.isfinite(result.probabilities).all()
    assert result.probabilities.sum().item() == pytest.approx(1.0, abs=1e-4)
    assert result.names[0] in classifier.class_names


def encode(mode: str, width: int, height: int, fmt: str, seed: int, frames: int = 1) -> bytes:
    """An image of the given mode and size encoded in ``fmt``; skips combinations Pillow cannot save."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    images = [Image.fromarray(np.roll(pixels, i, axis=1)).convert(mode) for i in range(frames)]
    buffer = io.BytesIO()
    try:
        images[0].save(buffer, format=fmt, save_all=frames > 1, append_images=images[1:])
    except (OSError, ValueError, KeyError, TypeError):
        pytest.skip(f"Pillow cannot write mode {mode} as {fmt}")  # only reached via @example
    return buffer.getvalue()


@FUZZ
@given(data=st.binary(max_size=2048), suffix=st.sampled_from([".png", ".jpg", ".gif", ".bin"]))
@example(data=b"", suffix=".png")  # an empty file
@example(data=b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, suffix=".png")  # a PNG signature, then junk
@example(data=b"GIF89a\x01\x00\x01\x00", suffix=".gif")  # a truncated GIF header
def test_random_bytes_give_a_prediction_or_a_clear_error(classifier, data, suffix):
    assert_prediction_or_clear_error(classifier, data, suffix)


@st.composite
def odd_images(draw) -> tuple[bytes, str]:
    mode = draw(st.sampled_from(MODES))
    fmt = draw(st.sampled_from(FORMATS))
    width = draw(st.one_of(st.integers(1, 64), st.sampled_from([1, 2, 700])))
    height = draw(st.one_of(st.integers(1, 64), st.sampled_from([1, 3, 500])))
    frames = draw(st.sampled_from([1, 1, 3])) if fmt in ("GIF", "WEBP", "PNG", "TIFF") else 1
    rng_seed = draw(st.integers(0, 2**16))
    pixels = np.random.default_rng(rng_seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    images = [Image.fromarray(np.roll(pixels, i, axis=1)).convert(mode) for i in range(frames)]
    buffer = io.BytesIO()
    try:
        images[0].save(buffer, format=fmt, save_all=frames > 1, append_images=images[1:])
    except (OSError, ValueError, KeyError, TypeError):
        assume(False)  # a combination Pillow cannot write is not an input anyone has
    data = buffer.getvalue()
    # Also cut some files short, as an interrupted download would.
    if draw(st.booleans()) and len(data) > 20:
        data = data[: draw(st.integers(1, len(data) - 1))]
    return data, "." + fmt.lower()


@FUZZ
@given(image=odd_images())
def test_odd_images_give_a_prediction_or_a_clear_error(classifier, image):
    data, suffix = image
    assert_prediction_or_clear_error(classifier, data, suffix)


@pytest.mark.parametrize(
    ("mode", "size", "fmt", "frames"),
    [
        ("L", (1, 1), "PNG", 1),  # 1x1
        ("I;16", (40, 30), "PNG", 1),  # 16-bit
        ("CMYK", (50, 60), "JPEG", 1),  # CMYK JPEG, as print workflows write
        ("P", (30, 30), "GIF", 4),  # animated
        ("RGB", (3000, 2000), "JPEG", 1),  # a large photo
    ],
)
def test_named_odd_images_are_classified(classifier, mode, size, fmt, frames):
    data = encode(mode, *size, fmt, seed=1, frames=frames)
    result = predict_file(classifier, data, "." + fmt.lower())
    assert result.probabilities.shape == (1, 10)
    assert torch.isfinite(result.probabilities).all()
