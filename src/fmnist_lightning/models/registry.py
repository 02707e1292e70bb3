"""The networks this project builds, by the ``_target_`` string a config or checkpoint names.

``NETWORKS`` is the allowlist that configs and checkpoint hyperparameters are checked
against before anything is built from them: add a network here to make it buildable.
``LEGACY_TARGETS`` maps the targets that release 0.1.0 wrote into its checkpoints (when
the networks were top-level modules) to where they live now.
"""

import importlib

VGG = "fmnist_lightning.models.vgg.VGGStyleCNN"
RESNET18 = "fmnist_lightning.models.resnet.ResNet18"
COMPACT = "fmnist_lightning.models.compact.CompactCNN"

NETWORKS: frozenset[str] = frozenset({VGG, RESNET18, COMPACT})

LEGACY_TARGETS: dict[str, str] = {
    "fmnist_lightning.network.VGGStyleCNN": VGG,
    "fmnist_lightning.resnet.ResNet18": RESNET18,
}


def current_target(target: str) -> str:
    """Where a network named by an old checkpoint lives now; other names unchanged."""
    return LEGACY_TARGETS.get(target, target)


def network_class(target: str) -> type:
    """The class of a network of ``NETWORKS``; any other name is refused before an import."""
    if target not in NETWORKS:
        raise ValueError(
            f"{target!r} is not a network of this project: {', '.join(sorted(NETWORKS))}"
        )
    module, _, name = target.rpartition(".")
    return getattr(importlib.import_module(module), name)
