"""The layer stack of a network: torchinfo's summary, and one row per layer for the diagram."""

import copy
import re

import pandas as pd
from torch import nn
from torchinfo import summary

from fmnist_lightning.models.runtime import unwrapped


def describe_layer(layer: nn.Module) -> str:
    """A short label for a diagram box, e.g. "Conv2d 64, 7×7" or "Dropout 0.5"."""
    name = type(layer).__name__
    if isinstance(layer, nn.Conv2d):
        return f"{name} {layer.out_channels}, {layer.kernel_size[0]}×{layer.kernel_size[1]}"
    if isinstance(layer, nn.MaxPool2d | nn.AvgPool2d):
        size = layer.kernel_size if isinstance(layer.kernel_size, int) else layer.kernel_size[0]
        return f"{name} {size}×{size}"
    if isinstance(layer, nn.Linear):
        return f"{name} {layer.out_features}"
    if isinstance(layer, nn.Dropout):
        return f"{name} {layer.p:g}"
    return name


def shape_text(shape: tuple[int, ...] | list[int]) -> str:
    return "×".join(str(size) for size in shape)


def model_summary(network: nn.Module, input_shape: tuple[int, ...]) -> tuple[str, pd.DataFrame]:
    """torchinfo's summary text, and one row per leaf layer: layer, output_shape, params,
    mult_adds. It runs a float32 copy on the CPU, so the network itself is not moved."""
    copied = copy.deepcopy(unwrapped(network)).float().cpu()
    columns = ("output_size", "num_params", "mult_adds")
    stats = summary(copied, (1, *input_shape), col_names=columns, depth=4, device="cpu", verbose=0)
    rows = [("Input", shape_text(input_shape), 0, 0)]
    rows += [
        (describe_layer(i.module), shape_text(i.output_size[1:]), int(i.num_params), int(i.macs))
        for i in stats.summary_list
        if i.is_leaf_layer
    ]
    # torchinfo 1.8 on Python >= 3.11 prints its unit enum as "(Units.MEGABYTES)": show "(M)"
    # (its units are M, G and T).
    text = re.sub(r"\(Units\.(\w)\w*\)", r"(\1)", str(stats))
    return text, pd.DataFrame(rows, columns=["layer", "output_shape", "params", "mult_adds"])
