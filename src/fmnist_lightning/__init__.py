"""fmnist-lightning: Fashion-MNIST with PyTorch Lightning and Hydra. The commands are the
top-level modules (``python -m fmnist_lightning.<command>``); subpackages hold what they compose.

``from fmnist_lightning import load_classifier`` (or ``Classifier``, ``Predictions``) loads
``fmnist_lightning.inference.classifier`` on first use, so that importing the package, or a
command that needs no model (``results``), does not import torch.
"""

from typing import TYPE_CHECKING, Any

__all__ = ["Classifier", "Predictions", "load_classifier"]

if TYPE_CHECKING:  # pragma: no cover
    from fmnist_lightning.inference.classifier import Classifier, Predictions, load_classifier


def __getattr__(name: str) -> Any:
    if name in __all__:
        from fmnist_lightning.inference import classifier

        return getattr(classifier, name)
    raise AttributeError(f"module 'fmnist_lightning' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
