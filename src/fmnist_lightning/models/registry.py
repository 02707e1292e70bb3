"""The networks this project builds: ``NETWORKS`` is the allowlist a config's or checkpoint's
``_target_`` is checked against before anything is built; add a network here."""

import importlib

VGG = "fmnist_lightning.models.vgg.VGGStyleCNN"
RESNET18 = "fmnist_lightning.models.resnet.ResNet18"
COMPACT = "fmnist_lightning.models.compact.CompactCNN"

NETWORKS: frozenset[str] = frozenset({VGG, RESNET18, COMPACT})


def network_class(target: str) -> type:
    """The class of a network of ``NETWORKS`` (checked by ``HParams`` before this import)."""
    module, _, name = target.rpartition(".")
    return getattr(importlib.import_module(module), name)
