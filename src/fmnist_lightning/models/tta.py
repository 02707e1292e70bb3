"""Test-time augmentation: the mean softmax over views of a batch of network inputs.

The views of ``TTA(flip=True, shift=1)`` are the images, their mirror image, and each of
those moved by ``shift`` pixels left, right, up and down, the vacated pixels set to ``fill``
(the background, ``-mean / std``). ``TTA()`` is off: one view."""

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from fmnist_lightning.models.hparams import HyperparameterError, check_tta

TTAError = HyperparameterError  # the name callers catch a refused TTA setting by


@dataclass(frozen=True)
class TTA:
    flip: bool = False
    shift: int = 0

    def __post_init__(self) -> None:  # the one check of TTA settings, a checkpoint's included
        check_tta("tta", asdict(self))

    @property
    def enabled(self) -> bool:
        return self.flip or self.shift > 0

    @property
    def view_count(self) -> int:
        return (2 if self.flip else 1) * (5 if self.shift > 0 else 1)

    as_dict = asdict

    @classmethod
    def of(cls, settings: "TTA | Mapping[str, Any] | None") -> "TTA":
        """A TTA from itself, a mapping of its keys or None (off)."""
        if settings is None or isinstance(settings, TTA):
            return settings or cls()
        check_tta("tta", settings)  # a mapping of its keys only (their values: __post_init__)
        return cls(**settings)


def shift_images(images: torch.Tensor, dx: int, dy: int, fill: float) -> torch.Tensor:
    """(N, C, H, W) images moved ``dx`` pixels right and ``dy`` down, filled with ``fill``."""
    height, width = images.shape[-2:]
    padded = F.pad(images, (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0)), value=fill)
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[..., top : top + height, left : left + width].contiguous()


def views(images: torch.Tensor, tta: TTA, fill: float) -> list[torch.Tensor]:
    bases = [images, images.flip(-1)] if tta.flip else [images]
    s = tta.shift
    shifts = ((s, 0), (-s, 0), (0, s), (0, -s)) if s > 0 else ()
    return bases + [shift_images(base, dx, dy, fill) for dx, dy in shifts for base in bases]


def tta_probabilities(
    predict: Callable, images: torch.Tensor, tta: TTA, fill: float, first: torch.Tensor
) -> torch.Tensor:
    """The mean of ``predict`` over the views; ``first``: its value on the unchanged images."""
    return torch.stack([first] + [predict(view) for view in views(images, tta, fill)[1:]]).mean(0)
