"""fmnist-lightning: Fashion-MNIST with PyTorch Lightning and Hydra.

    from fmnist_lightning import load_classifier

``Classifier``, ``Predictions`` and ``load_classifier`` (``fmnist_lightning.inference.classifier``)
are loaded on first use, so that importing the package, or running a command that needs no
model (``python -m fmnist_lightning.results``), does not import torch.

The commands are the top-level modules (``python -m fmnist_lightning.<command>``): train,
evaluate, predict, export, results, benchmark. What they compose lives in subpackages by
role: data, models, inference, analysis, training, config.
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
