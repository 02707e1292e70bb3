"""Small, untrained FashionMNISTModules built by hand (no config), for tests of one piece."""

from typing import Any

from fmnist_lightning.data.files import CLASS_NAMES
from fmnist_lightning.models import registry
from fmnist_lightning.models.module import FashionMNISTModule

__all__ = ["tiny_module"]


def tiny_module(
    blocks: list[list[int]] | None = None, dense: list[int] | None = None, **options: Any
) -> FashionMNISTModule:
    """A VGG of ``blocks`` (default one conv of 4) and ``dense`` (default [8]) with Adam, no
    schedule and the real class names; ``options`` override any other hyperparameter."""
    hparams: dict[str, Any] = dict(
        net={"_target_": registry.VGG, "blocks": blocks or [[4]], "dense": dense or [8]},
        optimizer={"_target_": "torch.optim.Adam", "lr": 1e-3},
        scheduler=None,
        label_smoothing=0.0,
        class_names=list(CLASS_NAMES),
        mean=0.2860,
        std=0.3530,
    )
    return FashionMNISTModule(**{**hparams, **options})
