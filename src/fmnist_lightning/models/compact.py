"""A compact, fast network in the style of airbench (Keller Jordan's CIFAR-10 speedruns).

    stem:   Conv3x3(in -> stem_width) -> BatchNorm -> act             at full resolution
    groups: for each w in widths:
              Conv3x3(c -> w) -> MaxPool2d(2) -> BatchNorm -> act      (the pooled activation)
              -> Conv3x3(w -> w) -> BatchNorm -> act [+ the pooled activation if residual]
    head:   global max or average pool -> Dropout -> Linear(c -> classes), times logit_scale

Convolutions before a BatchNorm carry no bias (the norm's shift replaces it). Pooling right
after a group's first convolution runs the rest at a quarter of the pixels. ``logit_scale``
tempers the logits of an unnormalised head, as airbench's 1/8; ReLU is ~12% cheaper than
GELU per step on a CPU. The defaults: 1,161,224 parameters on 1x28x28 inputs.
"""

from collections.abc import Sequence

import torch
from torch import nn

POOLS = {"max": nn.AdaptiveMaxPool2d, "avg": nn.AdaptiveAvgPool2d}
# In place is safe after a BatchNorm: its backward pass needs its input, not its output.
ACTIVATIONS = {"gelu": nn.GELU, "relu": lambda: nn.ReLU(inplace=True)}


def conv_bn_act(cin: int, cout: int, activation: str, pool: bool = False) -> list[nn.Module]:
    conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
    pooled = [conv, nn.MaxPool2d(2)] if pool else [conv]
    return [*pooled, nn.BatchNorm2d(cout), ACTIVATIONS[activation]()]


class ConvGroup(nn.Module):
    def __init__(self, in_channels: int, width: int, residual: bool, activation: str) -> None:
        super().__init__()
        self.first = nn.Sequential(*conv_bn_act(in_channels, width, activation, pool=True))
        self.second = nn.Sequential(*conv_bn_act(width, width, activation))
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.first(x)
        return self.second(pooled) + pooled if self.residual else self.second(pooled)


class CompactCNN(nn.Module):
    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        stem_width: int = 24,
        widths: Sequence[int] = (64, 128, 256),
        residual: bool = False,
        pool: str = "max",
        dropout: float = 0.0,
        logit_scale: float = 0.125,
        activation: str = "gelu",
    ) -> None:
        super().__init__()
        options = (("pool", pool, POOLS), ("activation", activation, ACTIVATIONS))
        for name, value, choices in options:
            if value not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}.")
        if not widths:
            raise ValueError("widths must name at least one group width, e.g. [64, 128, 256].")
        self.stem = nn.Sequential(*conv_bn_act(in_channels, stem_width, activation))
        pairs = zip([stem_width, *widths[:-1]], widths, strict=True)  # each group's in and out
        self.groups = nn.Sequential(*(ConvGroup(c, w, residual, activation) for c, w in pairs))
        self.pool = POOLS[pool](1)
        self.dropout = nn.Dropout(dropout)
        # Named `head` so that model.head_lr finds it (FashionMNISTModule.configure_optimizers).
        self.head = nn.Linear(widths[-1], num_classes, bias=False)
        self.logit_scale = float(logit_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.pool(self.groups(self.stem(x))).flatten(1)
        return self.head(self.dropout(features)) * self.logit_scale
