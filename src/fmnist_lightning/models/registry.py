"""The networks this project builds, by the ``_target_`` string a config or checkpoint names.

``NETWORKS`` is the allowlist that configs and checkpoint hyperparameters are checked
against before anything is built from them: add a network here to make it buildable.
"""

import importlib

VGG = "fmnist_lightning.models.vgg.VGGStyleCNN"
RESNET18 = "fmnist_lightning.models.resnet.ResNet18"
COMPACT = "fmnist_lightning.models.compact.CompactCNN"

NETWORKS: frozenset[str] = frozenset({VGG, RESNET18, COMPACT})


def network_class(target: str) -> type:
    """The class of a network of ``NETWORKS`` (checked by ``HParams`` before this import)."""
    module, _, name = target.rpartition(".")
    return getattr(importlib.import_module(module), name)
