import io

import numpy as np
import pytest
from PIL import Image

from fmnist_lightning.inference.images import (
    ImageReadError,
    fit_to_square,
    load_image,
    prepare_image,
    read_image,
    to_grayscale,
)


def garment(size: int = 28, seed: int = 0) -> np.ndarray:
    """A dataset-like uint8 image: a bright textured block on a black background."""
    rng = np.random.default_rng(seed)
    image = np.zeros((size, size), dtype=np.uint8)
    quarter = size // 4
    image[quarter:-quarter, quarter:-quarter] = rng.integers(
        120, 256, size=(size - 2 * quarter, size - 2 * quarter)
    )
    return image


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def test_dataset_like_png_passes_through_unchanged():
    pixels = garment()
    assert np.array_equal(load_image(encoded(Image.fromarray(pixels))), pixels)


def test_light_background_is_inverted_back():
    pixels = garment()
    light = Image.fromarray(255 - pixels)
    assert to_grayscale(light)[0].mean() > 0.5  # a light border: inverted
    assert np.array_equal(load_image(encoded(light)), pixels)
    assert np.array_equal(load_image(encoded(light), invert=False), 255 - pixels)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA", "P", "1", "CMYK", "YCbCr", "HSV"])
def test_every_colour_mode_becomes_the_same_28x28_uint8(mode):
    pixels = garment()
    if mode == "1":
        pixels = np.where(pixels > 0, 255, 0).astype(np.uint8)
    result = prepare_image(Image.fromarray(pixels).convert(mode))
    assert result.shape == (28, 28) and result.dtype == np.uint8
    assert (
        np.abs(result.astype(int) - pixels).max() <= 2
    )  # YCbCr/CMYK/HSV round trips lose a little


def test_sixteen_bit_png_keeps_its_scale():
    pixels = garment()
    wide = pixels.astype(np.uint16) * 257  # 8-bit values spread over 0..65535
    image = read_image(encoded(Image.fromarray(wide)))
    assert image.mode.startswith("I")
    assert np.array_equal(prepare_image(image), pixels)
    # 32-bit integer images are read on the same 16-bit scale.
    assert np.array_equal(prepare_image(Image.fromarray(wide.astype(np.int32))), pixels)


def test_float_images_in_either_unit_or_byte_scale(tmp_path):
    pixels = garment()
    for scale in (1 / 255, 1.0):
        image = Image.fromarray(pixels.astype(np.float32) * scale)
        assert image.mode == "F"
        assert np.array_equal(prepare_image(image), pixels)
    nan = Image.fromarray(np.full((28, 28), np.nan, dtype=np.float32))
    with pytest.raises(ImageReadError, match="NaN"):
        prepare_image(nan)
    path = tmp_path / "scan.tif"
    nan.save(path)
    with pytest.raises(ImageReadError, match="scan.tif'.*NaN"):
        load_image(path)


def test_transparent_pixels_count_as_white_background():
    rgba = np.zeros((40, 40, 4), dtype=np.uint8)
    rgba[10:30, 10:30] = (30, 30, 30, 255)  # an opaque dark garment, transparent around it
    result = load_image(encoded(Image.fromarray(rgba, mode="RGBA")))
    # Background inverted to black, the dark garment to light.
    assert result[0, 0] == 0 and result[14, 14] == 255 - 30


def test_photo_sized_jpeg_is_resized_with_its_aspect_kept():
    # A dark shirt on white, 3:2 landscape, the way a product photo looks.
    photo = np.full((200, 300, 3), 250, dtype=np.uint8)
    photo[40:160, 100:200] = (20, 40, 90)
    result = load_image(encoded(Image.fromarray(photo), "JPEG", quality=90))
    assert result.shape == (28, 28)
    # Longer side 300 → 28, so 200 → 19 rows, centred between background bands.
    assert result[:4].max() < 20 and result[-4:].max() < 20
    assert result[14, 14] > 180  # the garment, now light
    assert result[14, 2] < 20  # background, now black


def test_integer_factor_downscale_is_exact():
    pixels = garment()
    big = Image.fromarray(pixels).resize((112, 112), Image.Resampling.NEAREST)
    assert np.array_equal(load_image(encoded(big)), pixels)


def test_tiny_and_extreme_aspect_images_still_give_28x28():
    assert load_image(encoded(Image.new("L", (1, 1), 200))).shape == (28, 28)
    assert load_image(encoded(Image.new("RGB", (5000, 1), (0, 0, 0)))).shape == (28, 28)
    square = fit_to_square(np.ones((1, 5000), np.float32), fill=0.0)
    assert square.shape == (28, 28) and square.sum() == 28 and square[13].min() == 1.0


def test_animated_gif_uses_its_first_frame():
    first = Image.fromarray(garment(seed=1))
    second = Image.fromarray(255 - garment(seed=2))
    data = encoded(first, "GIF", save_all=True, append_images=[second])
    assert np.array_equal(load_image(data), garment(seed=1))


def test_exif_rotation_is_applied():
    pixels = np.zeros((28, 40), dtype=np.uint8)
    pixels[:, :10] = 255  # bright band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    image = read_image(encoded(Image.fromarray(pixels), "JPEG", exif=exif, quality=95))
    assert image.size == (28, 40)
    assert np.asarray(image)[:8].mean() > 200  # the band is now at the top


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not an image format"),
        (b"random bytes, certainly no image" * 10, "not an image format"),
        (encoded(Image.fromarray(garment()))[:60], "corrupt, truncated"),
    ],
)
def test_bad_bytes_raise_image_read_error(data, reason):
    with pytest.raises(ImageReadError, match=reason):
        load_image(data)


def test_bad_files_name_the_path(tmp_path):
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(encoded(Image.fromarray(garment()))[:80])
    for path, reason in (
        (corrupt, "corrupt, truncated"),
        (tmp_path / "missing.png", "no such file"),
        (tmp_path, "is a directory"),
    ):
        with pytest.raises(ImageReadError, match=reason) as error:
            load_image(path)
        assert str(path) in str(error.value) and error.value.source == str(path)


def test_decompression_bombs_are_refused(monkeypatch):
    big = encoded(Image.new("L", (300, 300)))
    with pytest.raises(ImageReadError, match=r"decompression bomb \(300x300 .* limit of 10,000"):
        load_image(big, max_pixels=10_000)
    # Pillow's own guard (warning between 1x and 2x its limit, error above) also gives one error type.
    for limit in (60_000, 20_000):
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
        with pytest.raises(ImageReadError, match="decompression bomb"):
            load_image(big)
