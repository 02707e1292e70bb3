"""Augmentation of whole batches on the device that trains: each image gets its own crop
offset, flip and erased rectangle, drawn with a few tensor operations (no per-sample Python).
The images arrive normalised: an erased rectangle filled with 0 holds the mean pixel, as
torchvision's ``RandomErasing`` after ``Normalize``."""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass
class BatchAugment:
    """Crop from an image padded with its darkest value (the background), left-right flip,
    and erasing of one rectangle (aspect ratio log-uniform; unlike torchvision's, one too
    large for the image is clipped, not re-drawn). conf/data/augment/none.yaml holds the
    defaults below; the other presets start from it."""

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
        # crop_padding, flip_p and erase_p: the config schema's ranges (config/schema.py).
        self.erase_scale, self.erase_ratio = tuple(self.erase_scale), tuple(self.erase_ratio)
        (low, high), (ratio_low, ratio_high) = self.erase_scale, self.erase_ratio
        if not 0 < low <= high <= 1:
            raise ValueError(f"erase_scale needs 0 < min <= max <= 1, got {self.erase_scale}.")
        if not 0 < ratio_low <= ratio_high:
            raise ValueError(f"erase_ratio needs 0 < min <= max, got {self.erase_ratio}.")

    @property
    def enabled(self) -> bool:
        return (self.crop and self.crop_padding > 0) or self.flip or self.erase

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) → augmented copies."""
        if self.crop and self.crop_padding > 0:
            images = self.random_crop(images)
        if self.flip:
            flip = torch.rand(images.shape[0], device=images.device) < self.flip_p
            images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
        if self.erase:
            images = self.random_erase(images)
        return images

    def random_crop(self, images: torch.Tensor) -> torch.Tensor:
        (n, channels, height, width), padding = images.shape, self.crop_padding
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

    def random_erase(self, images: torch.Tensor) -> torch.Tensor:
        (n, _, height, width), device = images.shape, images.device
        area = height * width * torch.empty(n, device=device).uniform_(*self.erase_scale)
        log_ratio = (math.log(ratio) for ratio in self.erase_ratio)
        aspect = torch.empty(n, device=device).uniform_(*log_ratio).exp()
        box_h = (area * aspect).sqrt().round().clamp(1, height).view(n, 1, 1)
        box_w = (area / aspect).sqrt().round().clamp(1, width).view(n, 1, 1)
        top = (torch.rand(n, device=device).view(n, 1, 1) * (height - box_h + 1)).floor()
        left = (torch.rand(n, device=device).view(n, 1, 1) * (width - box_w + 1)).floor()
        rows = torch.arange(height, device=device).view(1, height, 1)
        cols = torch.arange(width, device=device).view(1, 1, width)
        inside = (rows >= top) & (rows < top + box_h) & (cols >= left) & (cols < left + box_w)
        erase = (torch.rand(n, device=device) < self.erase_p).view(n, 1, 1) & inside
        return images.masked_fill(erase.unsqueeze(1), self.erase_value)
