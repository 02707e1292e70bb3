"""Test-time augmentation: views of a batch of network inputs, and the mean softmax over them.

The views of ``TTA(flip=True, shift=1)`` are the images themselves, their mirror image
(``torch.flip`` on the width axis), and each of those moved by ``shift`` pixels left,
right, up and down, with the vacated pixels set to the background (``fill``: the value a
black pixel has after normalisation, ``-mean / std``). ``TTA()`` is off: one view.

The LightningModule uses it for ``val_acc_tta`` / ``test_acc_tta``;
``inference.batches.predict_probabilities`` for ``evaluate`` and ``Classifier.predict``.
"""

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch


class TTAError(ValueError):
    """Test-time augmentation settings that are not a flip switch and a shift in pixels."""


@dataclass(frozen=True)
class TTA:
    """Which views to average: the mirror image (``flip``) and shifts by ``shift`` pixels."""

    flip: bool = False
    shift: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.flip, bool):
            raise TTAError(f"tta.flip must be true or false, got {self.flip!r}.")
        if isinstance(self.shift, bool) or not isinstance(self.shift, int) or self.shift < 0:
            raise TTAError(f"tta.shift must be a whole number of pixels >= 0, got {self.shift!r}.")

    @property
    def enabled(self) -> bool:
        return self.flip or self.shift > 0

    @property
    def view_count(self) -> int:
        return (2 if self.flip else 1) * (5 if self.shift > 0 else 1)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, settings: "TTA | Mapping[str, Any] | None") -> "TTA":
        """A TTA from itself, a mapping of its keys (a config node) or None (off)."""
        if settings is None or isinstance(settings, TTA):
            return settings or cls()
        if not isinstance(settings, Mapping):
            raise TTAError(
                f"tta must be a mapping with keys flip and shift, got {type(settings).__name__}."
            )
        unknown = sorted(set(settings) - {"flip", "shift"})
        if unknown:
            raise TTAError(f"tta has unknown keys {unknown}; it takes flip and shift.")
        return cls(**dict(settings))


def flip_width(images: torch.Tensor) -> torch.Tensor:
    """The mirror images, (N, C, H, W) flipped left-right."""
    return torch.flip(images, dims=(-1,))


def shift_images(images: torch.Tensor, dx: int, dy: int, fill: float) -> torch.Tensor:
    """(N, C, H, W) images moved ``dx`` pixels right and ``dy`` down (negative: left, up);
    the pixels moved in from outside are ``fill``."""
    height, width = images.shape[-2:]
    shifted = torch.full_like(images, fill)
    if abs(dx) >= width or abs(dy) >= height:
        return shifted
    target_rows, source_rows = _window(dy, height)
    target_cols, source_cols = _window(dx, width)
    shifted[..., target_rows, target_cols] = images[..., source_rows, source_cols]
    return shifted


def _window(offset: int, size: int) -> tuple[slice, slice]:
    """(target, source) slices of an axis moved by ``offset``."""
    if offset >= 0:
        return slice(offset, size), slice(0, size - offset)
    return slice(0, size + offset), slice(-offset, size)


def views(images: torch.Tensor, tta: TTA, fill: float) -> list[torch.Tensor]:
    """The views of ``tta``, the unchanged images first."""
    bases = [images, flip_width(images)] if tta.flip else [images]
    out = list(bases)
    if tta.shift > 0:
        s = tta.shift
        for dx, dy in ((s, 0), (-s, 0), (0, s), (0, -s)):
            out += [shift_images(base, dx, dy, fill) for base in bases]
    return out


def tta_probabilities(
    predict: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    tta: TTA,
    fill: float,
    first: torch.Tensor | None = None,
) -> torch.Tensor:
    """The mean over the views of ``predict(view)`` (class probabilities, (N, classes)).

    ``first``: the probabilities of the unchanged images, when the caller has them already.
    """
    batch_views = views(images, tta, fill)
    probabilities = [predict(batch_views[0]) if first is None else first]
    probabilities += [predict(view) for view in batch_views[1:]]
    return torch.stack(probabilities).mean(dim=0)
