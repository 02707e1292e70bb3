"""What checkpoints of release 0.1.0 need: their network names and hyperparameter layout
(network and run-time keys together under ``model``, ``interval`` in the scheduler's)."""

from typing import Any

from fmnist_lightning.models.registry import RESNET18, VGG

LEGACY_TARGETS: dict[str, str] = {
    "fmnist_lightning.network.VGGStyleCNN": VGG,
    "fmnist_lightning.resnet.ResNet18": RESNET18,
}


def upgrade_hparams(hparams: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameters in the current layout (only the shape; ``HParams`` checks values)."""
    upgraded = dict(hparams)
    if "net" in hparams or not isinstance(upgraded.get("model"), dict):
        return upgraded
    # Starting points of a fresh run (read once by the builder): not part of a trained model.
    model = {k: v for k, v in upgraded.pop("model").items() if k not in ("weights", "init_from")}
    # Keys of 0.1.0's ``model`` that said how the network runs, not what it is.
    runtime = {k: model.pop(k) for k in ("channels_last", "compile", "head_lr") if k in model}
    if isinstance(model.get("_target_"), str):
        model["_target_"] = LEGACY_TARGETS.get(model["_target_"], model["_target_"])
    upgraded["net"] = model
    scheduler = upgraded.get("scheduler")
    if scheduler is None or isinstance(scheduler, dict):
        schedule = dict(scheduler or {})
        interval = schedule.pop("interval", "epoch")
        upgraded["scheduler"] = {"interval": interval, "schedule": schedule or None}
    return {**upgraded, **runtime}
