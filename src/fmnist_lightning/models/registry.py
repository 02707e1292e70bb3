"""The networks this project builds: ``NETWORKS`` is the allowlist a config's or checkpoint's
``_target_`` is checked against before anything is built; add a network here."""

VGG = "fmnist_lightning.models.vgg.VGGStyleCNN"
RESNET18 = "fmnist_lightning.models.resnet.ResNet18"
COMPACT = "fmnist_lightning.models.compact.CompactCNN"

NETWORKS: frozenset[str] = frozenset({VGG, RESNET18, COMPACT})
# The networks with a `head` module, which model.head_lr trains at its own rate.
HEADED: frozenset[str] = frozenset({RESNET18, COMPACT})
