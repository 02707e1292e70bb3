"""The hyperparameters a checkpoint stores, and the upgrade of release 0.1.0's layout.

Layout now (the arguments of ``FashionMNISTModule``, all plain types)::

    net:        {_target_: <a network of models.registry.NETWORKS>, ...its arguments}
    optimizer:  {_target_: torch.optim.X, lr: ..., ...}
    scheduler:  {interval: step|epoch, schedule: {_target_: ..., ...} | null}
    label_smoothing, class_names, mean, std, channels_last, compile, head_lr

Release 0.1.0 kept the network's arguments and the run-time keys together under ``model``
(with ``weights`` and ``init_from``, which a checkpoint no longer needs) and the
scheduler's ``interval`` inside the scheduler's own arguments.
"""

from collections.abc import Mapping
from typing import Any

from fmnist_lightning.models.registry import NETWORKS, current_target

# Keys of 0.1.0's ``model`` that said how the network runs, not what it is.
RUNTIME_KEYS = ("channels_last", "compile", "head_lr")
# Starting points of a fresh run (read once by the builder): not part of a trained model.
STARTING_WEIGHT_KEYS = ("weights", "init_from")


class HyperparameterError(ValueError):
    """Checkpoint hyperparameters that this code cannot build a model from."""


def is_legacy(hparams: Mapping[str, Any]) -> bool:
    """Release 0.1.0's layout: a ``model`` key and no ``net``."""
    return "model" in hparams and "net" not in hparams


def upgrade_scheduler(scheduler: Mapping[str, Any] | None) -> dict[str, Any]:
    """0.1.0's scheduler (its arguments with ``interval`` among them, or empty) → the new layout."""
    schedule = dict(scheduler or {})
    interval = schedule.pop("interval", "epoch")
    return {"interval": interval, "schedule": schedule or None}


def upgrade_hparams(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """Hyperparameters in the current layout; those of 0.1.0 are rewritten, others copied."""
    upgraded = dict(hparams)
    if not is_legacy(hparams):
        return upgraded
    model = dict(upgraded.pop("model") or {})
    for key in STARTING_WEIGHT_KEYS:
        model.pop(key, None)
    runtime = {key: model.pop(key) for key in RUNTIME_KEYS if key in model}
    if "_target_" in model:
        model["_target_"] = current_target(str(model["_target_"]))
    upgraded["net"] = model
    upgraded["scheduler"] = upgrade_scheduler(upgraded.get("scheduler"))
    return {**upgraded, **runtime}


def validate_hparams(hparams: Mapping[str, Any]) -> None:
    """Raise HyperparameterError unless ``net._target_`` is one of the project's networks."""
    net = hparams.get("net")
    target = net.get("_target_") if isinstance(net, Mapping) else None
    if target not in NETWORKS:
        raise HyperparameterError(
            f"net._target_={target!r} is not a network of this project; expected one of "
            f"{', '.join(sorted(NETWORKS))}"
        )
