"""Classify images with a trained checkpoint, preprocessed exactly as in training.

    clf = load_classifier("lightning_logs/runs/<run>/checkpoints/last.ckpt")
    clf = load_classifier()        # the model shipped with the package: shipped/MODEL_CARD.md
    result = clf.predict(images)   # uint8/float arrays or tensors, PIL images, or file paths
    result.names, result.indices, result.probabilities

Arrays and tensors are taken as dataset-like already (28x28, light garment on black) and go
through ``data.normalise.normalise``, as in training; PIL images and files through
``inference.images`` first.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from fmnist_lightning.data.normalise import normalise
from fmnist_lightning.inference.batches import predict_probabilities
from fmnist_lightning.inference.images import IMAGE_SIZE, load_image, prepare_image
from fmnist_lightning.models.module import FashionMNISTModule, load_module
from fmnist_lightning.models.runtime import resolve_device
from fmnist_lightning.models.tta import TTA

DEFAULT_BATCH_SIZE = 1024
# The speedrun's network, trained by this project: weights and hyperparameters only, so that
# predict, serve and load_classifier() work before any training (shipped/MODEL_CARD.md).
SHIPPED_MODEL = Path(__file__).parent / "shipped" / "speedrun.pt"
SHIPPED_CARD = SHIPPED_MODEL.with_name("MODEL_CARD.md")


def shipped_accuracy() -> dict[str, float]:
    """The model card's accuracy rows (``| Test accuracy | 93.43% |``) as fractions, by name."""
    rows = re.findall(r"^\| (\w[\w ,]*) \| ([\d.]+)% \|$", SHIPPED_CARD.read_text(), re.MULTILINE)
    return {name: round(float(percent) / 100, 6) for name, percent in rows}


SHAPES = "(N, 28, 28), (N, 1, 28, 28) or (28, 28)"


@dataclass(frozen=True)
class Predictions:
    """What ``Classifier.predict`` returns for N images; tensors are on the CPU."""

    indices: torch.Tensor  # (N,) int64: the predicted class of each image
    names: list[str]  # the predicted class names, one per image
    probabilities: torch.Tensor  # (N, classes) float32 softmax probabilities

    @property
    def confidences(self) -> torch.Tensor:
        """(N,) probability of the predicted class."""
        return self.probabilities.gather(1, self.indices[:, None]).squeeze(1)

    def __len__(self) -> int:
        return len(self.indices)


def prediction_rows(probabilities: torch.Tensor, class_names: list[str]) -> list[dict[str, Any]]:
    """One row per image of (N, classes) probabilities, as ``predict`` writes them and ``serve``
    answers: class_index, class, confidence and probabilities by class name."""
    indices = probabilities.argmax(dim=1).tolist()
    return [
        {
            "class_index": index,
            "class": class_names[index],
            "confidence": row[index],
            "probabilities": dict(zip(class_names, row, strict=True)),
        }
        for index, row in zip(indices, probabilities.tolist(), strict=True)
    ]


def pixels_from_array(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """28x28 images → (N, 28, 28) uint8 in [0, 255] or float32 in [0, 1], on the CPU."""
    pixels = torch.as_tensor(np.array(images) if isinstance(images, np.ndarray) else images)
    pixels = pixels.detach().cpu()
    if pixels.dim() == 2 or (pixels.dim() == 4 and pixels.shape[1] == 1):
        pixels = pixels.reshape(-1, *pixels.shape[-2:])
    if pixels.dim() != 3 or tuple(pixels.shape[1:]) != (IMAGE_SIZE, IMAGE_SIZE):
        got = tuple(pixels.shape)
        raise ValueError(f"Expected images of shape {SHAPES}, got {got}: resize, or pass files.")
    if pixels.dtype == torch.uint8:
        return pixels
    # float64 holds every bound exactly enough, also of uint16/32/64, which torch cannot reduce.
    wide = pixels.double() if pixels.numel() else torch.zeros(1, dtype=torch.float64)
    low, high = wide.min().item(), wide.max().item()
    if pixels.dtype.is_floating_point and 0 <= low <= high <= 1:  # NaN fails the test too
        return pixels.float()
    number = pixels.dtype != torch.bool and not pixels.is_complex()
    if number and not pixels.dtype.is_floating_point and 0 <= low <= high <= 255:
        return pixels.to(torch.uint8)
    values = f" with values in [{low:g}, {high:g}]" if number else ""
    why = f"Expected uint8 pixels in [0, 255] or floats in [0, 1], got {pixels.dtype}{values}"
    raise ValueError(f"{why}; divide by 255, or pass normalised images to clf.module.predict_step.")


def as_pixels(images: Any, invert: bool | None = None) -> torch.Tensor:
    """Any supported input → (N, 28, 28) uint8 (or float32 in [0, 1]) pixels."""
    if isinstance(images, torch.Tensor | np.ndarray):
        return pixels_from_array(images)
    if isinstance(images, str | Path | Image.Image) or not isinstance(images, Sequence):
        images = [images]
    parts = [torch.empty(0, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.uint8)]  # torch.cat needs one
    for item in images:
        if isinstance(item, str | Path):
            item = load_image(item, invert=invert)
        elif isinstance(item, Image.Image):
            item = prepare_image(item, invert=invert)
        elif not isinstance(item, torch.Tensor | np.ndarray):
            kind = type(item).__name__
            raise TypeError(f"Cannot classify a {kind}: pass file paths, PIL images or arrays.")
        parts.append(pixels_from_array(item))
    if any(part.dtype != torch.uint8 for part in parts):  # a mix: bring uint8 to [0, 1] too
        parts = [part.float() / 255.0 if part.dtype == torch.uint8 else part for part in parts]
    return torch.cat(parts)


class Classifier:
    """A trained FashionMNISTModule with the preprocessing it was trained with."""

    def __init__(self, module: FashionMNISTModule, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        self.module = module.eval()
        self.batch_size = batch_size
        self.class_names: list[str] = module.class_names
        self.mean, self.std = float(module.hparams.mean), float(module.hparams.std)

    @property
    def device(self) -> torch.device:
        return self.module.device

    def to(self, device: str | torch.device) -> "Classifier":
        self.module.to(resolve_device(device))
        return self

    def normalised(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 28, 28) pixels → (N, 1, 28, 28) network input, exactly as in training."""
        if pixels.dtype != torch.uint8:  # floats in [0, 1]: normalise expects [0, 255]
            pixels = pixels.float() * 255.0
        return normalise(pixels, self.mean, self.std)

    def probabilities(
        self, pixels: torch.Tensor, batch_size: int | None = None, tta: TTA | dict | None = None
    ) -> torch.Tensor:
        """(N, 28, 28) pixels → (N, classes) probabilities on the CPU, batched on the device."""
        batch_size = batch_size or self.batch_size
        return predict_probabilities(
            self.module, pixels, batch_size, transform=self.normalised, tta=TTA.of(tta)
        )

    def predict(
        self,
        images: Any,
        batch_size: int | None = None,
        invert: bool | None = None,
        tta: TTA | dict[str, Any] | None = None,
    ) -> Predictions:
        """Classify arrays/tensors of (N, 28, 28) or (N, 1, 28, 28) pixels (uint8, or floats in
        [0, 1]), PIL images, or file paths (unreadable: ImageReadError).

        ``invert`` (PIL images and files): None inverts those with a light background.
        ``tta``: test-time augmentation, e.g. ``{"flip": True, "shift": 1}``; None: off.
        """
        probabilities = self.probabilities(as_pixels(images, invert), batch_size, tta)
        indices = probabilities.argmax(dim=1)
        return Predictions(indices, [self.class_names[i] for i in indices.tolist()], probabilities)


def load_classifier(
    path: Path | str | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Classifier:
    """A training checkpoint (loaded with ``weights_only=True``) as a ready-to-use Classifier;
    no path: the model shipped with the package (``SHIPPED_MODEL``).

    ``device``: "cpu", "cuda", "cuda:1", "auto" (CUDA when available). A file that is not a
    checkpoint of this project raises ``models.checkpoint_file.CheckpointError`` naming it.
    """
    module = load_module(path or SHIPPED_MODEL, map_location=resolve_device(device))
    return Classifier(module, batch_size)
