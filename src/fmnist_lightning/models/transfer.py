"""Start training from other weights, and give the classification head its own learning rate.

``model.weights`` and ``model.init_from`` are read only when a fresh run builds its module,
never on resume or load, so a checkpoint of the fine-tuned run loads without them.
"""

from pathlib import Path
from typing import Any

import torch
from torch import nn

from fmnist_lightning.errors import UsageError
from fmnist_lightning.models.checkpoint_file import CheckpointError, read_checkpoint
from fmnist_lightning.models.pretrained import load_torchvision_weights
from fmnist_lightning.models.runtime import COMPILED, unwrapped


def load_starting_weights(
    network: nn.Module, weights: str | Path | None, init_from: str | Path | None
) -> str | None:
    """Load ``model.weights`` or ``model.init_from``; say what was loaded."""
    if weights and init_from:
        raise UsageError(
            "model.weights and model.init_from both set: start from one of them "
            "(set the other to null)."
        )
    if weights:
        report = load_torchvision_weights(unwrapped(network), weights)
        return (
            f"Loaded {weights}: {len(report['kept'])} tensors kept, adapted "
            f"{report['adapted'] or 'none'}, re-initialised {report['reinitialised'] or 'none'}."
        )
    if not init_from:
        return None
    network, checkpoint = unwrapped(network), read_checkpoint(init_from)
    state = {
        name.removeprefix("net.").removeprefix(f"{COMPILED}."): tensor
        for name, tensor in checkpoint["state_dict"].items()
        if name.startswith("net.")
    }
    try:
        network.load_state_dict(state)
    except RuntimeError as error:
        their_network = checkpoint["hyper_parameters"]["net"].get("_target_", "?")
        raise CheckpointError(
            f"model.init_from: the network in '{init_from}' ({their_network}) does not "
            f"match this run's network ({type(network).__name__}); pick the same model config "
            f"as the checkpoint's run. {str(error).splitlines()[0][:300]}"
        ) from error
    return f"Initialised the network from checkpoint {init_from}."


def parameter_groups(
    module: nn.Module, head: nn.Module | None, head_lr: float | None
) -> list[dict[str, Any]]:
    trainable = [p for p in module.parameters() if p.requires_grad]
    if head_lr is None:
        return [{"params": trainable}]
    if head is None:
        raise UsageError(
            "model.head_lr is set, but this network has no `head` to give it to; "
            "set model.head_lr=null."
        )
    head_ids = {id(p) for p in head.parameters()}
    body = [p for p in trainable if id(p) not in head_ids]
    head_group = {"params": [p for p in trainable if id(p) in head_ids], "lr": float(head_lr)}
    return [{"params": body}, head_group] if body else [head_group]


def scale_schedule_to_groups(
    schedule: dict[str, Any], optimizer: torch.optim.Optimizer, base_lr: float | None
) -> dict[str, Any]:
    """Give schedules that set absolute rates (OneCycleLR's ``max_lr``) one rate per group,
    keeping each group's ratio to the optimiser's ``lr``."""
    lrs = [group["lr"] for group in optimizer.param_groups]
    if "max_lr" not in schedule or not base_lr or all(lr == base_lr for lr in lrs):
        return schedule
    max_lr = float(schedule["max_lr"])
    return {**schedule, "max_lr": [max_lr * lr / base_lr for lr in lrs]}
