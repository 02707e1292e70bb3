"""Start a ResNet-18 from a torchvision weight file (e.g. ImageNet): ``model.weights``.

The file's 3-channel 7x7 stem kernel is adapted to this project's 1-channel 3x3 stem
(:func:`adapt_stem_weight`), its 1000-class head is left at its fresh initialisation, and
every other tensor is kept as it is.
"""

from pathlib import Path

import torch
from torch import nn

from fmnist_lightning.models.checkpoint_file import CheckpointError
from fmnist_lightning.models.resnet import HEAD


class WeightsFileError(CheckpointError):
    """A ``model.weights`` file that is not a torchvision state dict this network can take."""


def resampling_matrix(source: int, target: int) -> torch.Tensor:
    """(target, source) weights that spread each source pixel linearly over the two nearest
    target pixels; every column sums to 1, so resampling keeps a kernel's total weight."""
    position = (torch.arange(source, dtype=torch.float64) + 0.5) * target / source - 0.5
    low = position.floor()
    high_weight = position - low
    matrix = torch.zeros(target, source, dtype=torch.float64)
    columns = torch.arange(source)
    for index, weight in ((low, 1 - high_weight), (low + 1, high_weight)):
        rows = index.clamp(0, target - 1).long()
        matrix.index_put_((rows, columns), weight, accumulate=True)
    return matrix


def adapt_stem_weight(weight: torch.Tensor, target_shape: torch.Size) -> torch.Tensor:
    """A torchvision stem kernel (64, 3, 7, 7) reshaped to ``target_shape``, e.g. (64, 1, 3, 3).

    Channels: a grey image is R = G = B, so summing the kernel over its colours gives the
    grey image the response the original gives its colour copy. Size: the kernel is
    resampled linearly such that each filter keeps its total weight (its response to a
    flat patch); the filters keep their coarse shape (edges, blobs), not their 7x7 detail.
    """
    out_channels, in_channels, height, width = target_shape
    if weight.shape[0] != out_channels:
        raise ValueError(
            f"the stem of the weights file has {weight.shape[0]} filters, the network {out_channels}."
        )
    if weight.shape[1] != in_channels:
        if in_channels != 1:
            raise ValueError(
                f"cannot map a {weight.shape[1]}-channel stem to {in_channels} channels; "
                "only 1 (grey) or the file's own channel count is supported."
            )
        weight = weight.sum(dim=1, keepdim=True)
    if weight.shape[2:] != (height, width):
        rows = resampling_matrix(weight.shape[2], height)
        cols = resampling_matrix(weight.shape[3], width)
        weight = (rows @ weight.double() @ cols.T).to(weight.dtype)
    return weight


def load_torchvision_weights(network: nn.Module, path: Path | str) -> dict[str, list[str]]:
    """Load a torchvision ResNet state dict file into ``network``, adapting stem and head.

    Kept as they are: every residual stage, every BatchNorm (weights and running statistics)
    and the stem's BatchNorm. Adapted: ``conv1.weight`` (see ``adapt_stem_weight``). Left at
    their fresh initialisation: the head (``fc``), when its shape differs (1000 ImageNet
    classes vs. 10). Returns the key names of each kind.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsFileError(
            f"model.weights: no file at '{path}'. Pass a torchvision state dict saved with "
            "torch.save(torchvision.models.resnet18(weights=...).state_dict(), path)."
        )
    try:
        source = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated file, pickle with code, not a torch file
        raise WeightsFileError(
            f"model.weights: '{path}' could not be read as a torch state dict "
            f"({type(error).__name__}: {str(error).splitlines()[0][:200]})."
        ) from error
    # Data only: tensors by name (weights_only=True already refused pickled code).
    if not isinstance(source, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in source.items()
    ):
        raise WeightsFileError(
            f"model.weights: '{path}' is not a state dict (a dict of tensor names to tensors), "
            "the format torchvision's weight files use."
        )
    target = network.state_dict()
    unexpected = sorted(set(source) - set(target))
    missing = sorted(set(target) - set(source))
    if unexpected or missing:
        raise WeightsFileError(
            f"model.weights: '{path}' does not fit {type(network).__name__}: "
            f"{len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]}). Use a ResNet-18 state dict."
        )
    report: dict[str, list[str]] = {"kept": [], "adapted": [], "reinitialised": []}
    state = {}
    for name, tensor in source.items():
        wanted = target[name].shape
        if tensor.shape == wanted:
            state[name] = tensor
            report["kept"].append(name)
        elif name == "conv1.weight":
            state[name] = adapt_stem_weight(tensor, wanted)
            report["adapted"].append(name)
        elif name.startswith(f"{HEAD}."):
            state[name] = target[name]
            report["reinitialised"].append(name)
        else:
            raise WeightsFileError(
                f"model.weights: '{name}' has shape {tuple(tensor.shape)} in '{path}', "
                f"the network expects {tuple(wanted)}."
            )
    network.load_state_dict(state)
    return report
