"""Start training from other weights: ``model.weights`` (a torchvision ResNet-18 file, e.g.
ImageNet's) or ``model.init_from`` (a checkpoint of this project).

Read only when a fresh run builds its module, never on resume or load, so a checkpoint of the
fine-tuned run loads without them. A torchvision file's 3-channel 7x7 stem kernel is adapted
to this project's 1-channel 3x3 stem, its 1000-class head is left at its fresh
initialisation, and every other tensor is kept.
"""

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fmnist_lightning.models.checkpoint_file import CheckpointError, first_line, read_checkpoint
from fmnist_lightning.models.runtime import COMPILED, unwrapped


def load_starting_weights(
    network: nn.Module, weights: str | Path | None, init_from: str | Path | None
) -> str:
    """Load ``model.weights`` or else ``model.init_from`` (the config check refuses both);
    say what was loaded."""
    network = unwrapped(network)
    if weights:
        report = load_torchvision_weights(network, weights)
        return (
            f"Loaded {weights}: {len(report['kept'])} tensors kept, adapted "
            f"{report['adapted'] or 'none'}, re-initialised {report['reinitialised'] or 'none'}."
        )
    checkpoint = read_checkpoint(init_from)
    state = {
        name.removeprefix("net.").removeprefix(f"{COMPILED}."): tensor
        for name, tensor in checkpoint["state_dict"].items()
        if name.startswith("net.")
    }
    try:
        network.load_state_dict(state)
    except RuntimeError as error:
        # torch's first line names no tensor ("Error(s) in loading state_dict for ..."): left out.
        theirs = checkpoint["hyper_parameters"]["net"].get("_target_", "?")
        message = f"the network in '{init_from}' ({theirs}) does not match {type(network).__name__}"
        raise CheckpointError(f"model.init_from: {message}; use its run's model config.") from error
    return f"Initialised the network from checkpoint {init_from}."


def resampling_matrix(source: int, target: int) -> torch.Tensor:
    """(target, source) weights spreading each source pixel over the two nearest target pixels:
    the transpose of linear interpolation from ``target`` to ``source`` pixels. Every column
    sums to 1, so resampling keeps a kernel's total weight."""
    identity = torch.eye(target, dtype=torch.float64)[None]  # (1, target channels, target)
    return F.interpolate(identity, size=source, mode="linear")[0]


def adapt_stem_weight(weight: torch.Tensor, target_shape: torch.Size) -> torch.Tensor:
    """A stem kernel (64, 3, 7, 7) reshaped to e.g. (64, 1, 3, 3): a grey image is R = G = B,
    so summing over colours keeps the response to it; resampling keeps each filter's total
    weight (its response to a flat patch) and coarse shape, not its 7x7 detail."""
    if weight.shape[1] != target_shape[1]:  # to grey: the caller checked the target is 1
        weight = weight.sum(dim=1, keepdim=True)
    rows = resampling_matrix(weight.shape[2], target_shape[2])
    cols = resampling_matrix(weight.shape[3], target_shape[3])
    return (rows @ weight.double() @ cols.T).to(weight.dtype)


def load_torchvision_weights(network: nn.Module, path: Path | str) -> dict[str, list[str]]:
    """Load a torchvision ResNet state dict file; return the names of the tensors kept,
    adapted (the stem) and left fresh (the head, when its class count differs)."""
    where = f"model.weights: '{path}'"
    fix = "pass a file saved by torch.save(torchvision.models.resnet18(weights=...).state_dict())"
    try:
        source = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # no file, a truncated file, a pickle with code, not a torch file
        detail = first_line(error, 200)
        raise CheckpointError(f"{where} could not be read ({detail}); {fix}.") from error
    if not isinstance(source, dict) or not all(map(torch.is_tensor, source.values())):
        raise CheckpointError(f"{where} is not a state dict (tensor names to tensors); {fix}.")
    target = network.state_dict()
    unexpected, missing = sorted(set(source) - set(target)), sorted(set(target) - set(source))
    if unexpected or missing:
        first = (missing or unexpected)[0]
        keys = f"{len(missing)} missing keys, {len(unexpected)} unexpected, e.g. {first}"
        raise CheckpointError(f"{where} does not fit {type(network).__name__} ({keys}); {fix}.")
    report: dict[str, list[str]] = {"kept": [], "adapted": [], "reinitialised": []}
    for name, tensor in source.items():
        wanted = target[name].shape
        if tensor.shape == wanted:
            target[name], kind = tensor, "kept"
        elif name == "conv1.weight" and tensor.shape[0] == wanted[0] and wanted[1] == 1:
            target[name], kind = adapt_stem_weight(tensor, wanted), "adapted"
        elif name.startswith("fc."):  # torchvision's classifier layer: fresh weights
            kind = "reinitialised"
        else:
            shapes = f"{tuple(tensor.shape)}, the network expects {tuple(wanted)}"
            raise CheckpointError(f"{where}: '{name}' has shape {shapes}.")
        report[kind].append(name)
    network.load_state_dict(target)
    return report
