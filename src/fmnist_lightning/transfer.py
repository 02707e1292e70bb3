"""Start training from other weights, and give the classification head its own learning rate.

Model config keys read here (by the LightningModule, not passed to the network):

- ``weights``: a torchvision-format state dict file (e.g. ImageNet ResNet-18), adapted to
  this network by ``resnet.load_torchvision_weights``.
- ``init_from``: a checkpoint of this project; its network weights are the starting point
  of a new run (fine-tuning), unlike ``ckpt_path``, which resumes the same run.
- ``head_lr``: learning rate of the network's ``head`` (null: the optimiser's ``lr``).

Both files are read when fitting starts, not when the network is built, so a checkpoint of
the fine-tuned run loads without them.
"""

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from fmnist_lightning.resnet import load_torchvision_weights

TRANSFER_KEYS = ("weights", "init_from", "head_lr")


def unwrapped(network: nn.Module) -> nn.Module:
    """The network itself, also when it is wrapped by torch.compile."""
    return getattr(network, "_orig_mod", network)


def load_initial_weights(network: nn.Module, model: Mapping[str, Any]) -> str | None:
    """Load ``model.weights`` or ``model.init_from`` into ``network``; say what was loaded."""
    weights, init_from = model.get("weights"), model.get("init_from")
    if weights and init_from:
        raise ValueError(
            "model.weights and model.init_from both set: start from one of them "
            "(set the other to null)."
        )
    if weights:
        report = load_torchvision_weights(unwrapped(network), weights)
        return (
            f"Loaded {weights}: {len(report['kept'])} tensors kept, adapted "
            f"{report['adapted'] or 'none'}, re-initialised {report['reinitialised'] or 'none'}."
        )
    if init_from:
        load_network_from_checkpoint(unwrapped(network), init_from)
        return f"Initialised the network from checkpoint {init_from}."
    return None


def load_network_from_checkpoint(network: nn.Module, path: str) -> None:
    """Copy the network weights of a checkpoint of this project into ``network`` (same architecture)."""
    # Imported here: checkpoints imports the LightningModule, which imports this module.
    from fmnist_lightning.checkpoints import CheckpointError, read_checkpoint

    checkpoint = read_checkpoint(path)
    state = {}
    for name, tensor in checkpoint["state_dict"].items():
        if name.startswith("net."):
            state[name.removeprefix("net.").removeprefix("_orig_mod.")] = tensor
    try:
        network.load_state_dict(state)
    except RuntimeError as error:
        their_model = checkpoint["hyper_parameters"]["model"].get("_target_", "?")
        raise CheckpointError(
            f"model.init_from: the network in '{path}' ({their_model}) does not match this "
            f"run's network ({type(network).__name__}); pick the same model config as the "
            f"checkpoint's run. {str(error).splitlines()[0][:300]}"
        ) from error


def parameter_groups(
    module: nn.Module, head: nn.Module | None, head_lr: float | None
) -> list[dict[str, Any]]:
    """The trainable parameters as optimiser groups: the head apart when it has its own lr."""
    trainable = [p for p in module.parameters() if p.requires_grad]
    if head_lr is None:
        return [{"params": trainable}]
    if head is None:
        raise ValueError(
            "model.head_lr is set, but this network has no `head` to give it to; "
            "set model.head_lr=null."
        )
    head_ids = {id(p) for p in head.parameters()}
    body = [p for p in trainable if id(p) not in head_ids]
    head_params = [p for p in trainable if id(p) in head_ids]
    groups = [{"params": body}] if body else []
    return groups + [{"params": head_params, "lr": float(head_lr)}]


def scale_schedule_to_groups(
    scheduler: dict[str, Any], optimizer: torch.optim.Optimizer, base_lr: float | None
) -> dict[str, Any]:
    """Give schedules that set absolute rates (OneCycleLR's ``max_lr``) one rate per group.

    Each group's peak keeps the ratio of its ``lr`` to the optimiser's ``lr``, so a head at
    10x the rate peaks at 10x ``max_lr``.
    """
    lrs = [group["lr"] for group in optimizer.param_groups]
    if "max_lr" not in scheduler or not base_lr or all(lr == base_lr for lr in lrs):
        return scheduler
    max_lr = float(scheduler["max_lr"])
    # _convert_: hand the scheduler a plain list, which it divides, not an OmegaConf ListConfig.
    return {**scheduler, "max_lr": [max_lr * lr / base_lr for lr in lrs], "_convert_": "all"}
