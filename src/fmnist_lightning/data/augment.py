"""Data augmentation applied to whole batches of tensors, on the device that trains.

Each image of a batch gets its own random crop offset, flip and erasing rectangle, all drawn
and applied with a few tensor operations: no per-sample Python, no PIL. The datamodule
augments training batches only, so validation, test and prediction see the plain images.

The images arrive normalised, ``(pixel / 255 - mean) / std``: an erased rectangle filled
with 0 therefore holds the dataset's mean pixel, as torchvision's ``RandomErasing`` does
after ``Normalize``. The presets in ``conf/data/augment/`` all start from ``none.yaml``,
whose values are the defaults of :class:`BatchAugment` (a test holds them equal).
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class BatchAugment:
    """Random crop from a padded image, horizontal flip and random erasing, each with a switch.

    - crop: pad every side by ``crop_padding`` pixels (with the image's darkest value, the
      black background), then cut a random window of the original size.
    - flip: mirror left-right with probability ``flip_p``.
    - erase: with probability ``erase_p``, fill one rectangle covering a fraction
      ``erase_scale`` of the image, with aspect ratio in ``erase_ratio`` (log-uniform),
      with ``erase_value``. Unlike torchvision, a rectangle too large for the image is
      clipped to it instead of re-drawn.
    """

    crop: bool = False
    crop_padding: int = 2
    flip: bool = False
    flip_p: float = 0.5
    erase: bool = False
    erase_p: float = 0.5
    erase_scale: Sequence[float] = (0.02, 0.33)
    erase_ratio: Sequence[float] = (0.3, 3.3)
    erase_value: float = 0.0

    def __post_init__(self) -> None:
        self.erase_scale, self.erase_ratio = tuple(self.erase_scale), tuple(self.erase_ratio)
        if self.crop_padding < 0:
            raise ValueError(f"crop_padding must be >= 0 pixels, got {self.crop_padding}.")
        for name in ("flip_p", "erase_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], got {getattr(self, name)}.")
        if not 0.0 < self.erase_scale[0] <= self.erase_scale[1] <= 1.0:
            raise ValueError(
                f"erase_scale is (min, max) fractions in (0, 1], got {self.erase_scale}."
            )
        if not 0.0 < self.erase_ratio[0] <= self.erase_ratio[1]:
            raise ValueError(
                f"erase_ratio is (min, max) aspect ratios > 0, got {self.erase_ratio}."
            )

    @property
    def enabled(self) -> bool:
        return (self.crop and self.crop_padding > 0) or self.flip or self.erase

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) → augmented (N, C, H, W); the input is left untouched."""
        if self.crop and self.crop_padding > 0:
            images = random_crop(images, self.crop_padding)
        if self.flip:
            flip = torch.rand(images.shape[0], device=images.device) < self.flip_p
            images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
        if self.erase:
            images = random_erase(
                images, self.erase_p, self.erase_scale, self.erase_ratio, self.erase_value
            )
        return images


def random_crop(images: torch.Tensor, padding: int) -> torch.Tensor:
    """Pad by ``padding`` with each image's minimum, then take one random window per image."""
    n, channels, height, width = images.shape
    fill = images.amin(dim=(1, 2, 3), keepdim=True)
    padded = fill.expand(n, channels, height + 2 * padding, width + 2 * padding).clone()
    padded[:, :, padding : padding + height, padding : padding + width] = images
    top = torch.randint(0, 2 * padding + 1, (n, 1, 1), device=images.device)
    left = torch.randint(0, 2 * padding + 1, (n, 1, 1), device=images.device)
    rows = top + torch.arange(height, device=images.device).view(1, height, 1)
    cols = left + torch.arange(width, device=images.device).view(1, 1, width)
    batch = torch.arange(n, device=images.device).view(n, 1, 1)
    # Advanced indexing on dims 0, 2, 3 around the channel slice gives (N, H, W, C).
    return padded[batch, :, rows, cols].permute(0, 3, 1, 2).contiguous()


def random_erase(
    images: torch.Tensor, p: float, scale: Sequence[float], ratio: Sequence[float], value: float
) -> torch.Tensor:
    """With probability ``p`` per image, fill one random rectangle with ``value``."""
    n, _, height, width = images.shape
    device = images.device
    area = height * width * torch.empty(n, device=device).uniform_(*scale)
    aspect = torch.empty(n, device=device).uniform_(math.log(ratio[0]), math.log(ratio[1])).exp()
    box_h = (area * aspect).sqrt().round().clamp(1, height).view(n, 1, 1)
    box_w = (area / aspect).sqrt().round().clamp(1, width).view(n, 1, 1)
    top = (torch.rand(n, device=device).view(n, 1, 1) * (height - box_h + 1)).floor()
    left = (torch.rand(n, device=device).view(n, 1, 1) * (width - box_w + 1)).floor()
    rows = torch.arange(height, device=device).view(1, height, 1)
    cols = torch.arange(width, device=device).view(1, 1, width)
    inside = (rows >= top) & (rows < top + box_h) & (cols >= left) & (cols < left + box_w)
    erase = (torch.rand(n, device=device) < p).view(n, 1, 1) & inside
    return images.masked_fill(erase.unsqueeze(1), value)


def as_augment(spec: BatchAugment | Mapping[str, Any] | None) -> BatchAugment | None:
    """A BatchAugment from itself, its config dict (``_target_`` optional) or None."""
    if not isinstance(spec, Mapping):
        return spec
    return BatchAugment(**{key: value for key, value in spec.items() if key != "_target_"})
