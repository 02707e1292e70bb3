"""The seed network: the VGG-style CNN of the Keras Fashion-MNIST tutorial, as a plain nn.Module."""

from collections.abc import Sequence

import torch
from torch import nn

WEIGHT_INITS = ("pytorch", "keras", "kaiming")


class VGGStyleCNN(nn.Module):
    """Conv 64 (7x7) → pool → 128, 128 → pool → 256, 256 → pool → dense 128 → 64 → classes:
    1,413,834 parameters with the defaults, as the Keras original. ``weight_init``: PyTorch's
    layer defaults, "keras" (Glorot-uniform, zero biases, as the original) or "kaiming"."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: int = 28,
        blocks: Sequence[Sequence[int]] = ((64,), (128, 128), (256, 256)),
        first_kernel_size: int = 7,
        kernel_size: int = 3,
        dense: Sequence[int] = (128, 64),
        dropout: float = 0.5,
        batch_norm: bool = False,
        dense_batch_norm: bool = False,
        weight_init: str = "pytorch",
    ) -> None:
        super().__init__()
        if weight_init not in WEIGHT_INITS:
            choices = ", ".join(WEIGHT_INITS)
            raise ValueError(f"weight_init must be one of {choices}, got {weight_init!r}.")
        features: list[nn.Module] = []
        channels = in_channels
        for index, widths in enumerate(blocks):
            for position, width in enumerate(widths):
                kernel = first_kernel_size if index == position == 0 else kernel_size
                # A conv followed by BatchNorm needs no bias: the norm's shift replaces it.
                conv = nn.Conv2d(channels, width, kernel, padding="same", bias=not batch_norm)
                features += [conv, nn.BatchNorm2d(width)] if batch_norm else [conv]
                features.append(nn.ReLU(inplace=True))
                channels = width
            features.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*features)

        classifier: list[nn.Module] = [nn.Flatten()]
        width = channels * (image_size // 2 ** len(blocks)) ** 2  # each block halves the size
        for hidden in dense:
            linear = nn.Linear(width, hidden, bias=not dense_batch_norm)
            classifier += [linear, nn.BatchNorm1d(hidden)] if dense_batch_norm else [linear]
            classifier += [nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = hidden
        classifier.append(nn.Linear(width, num_classes))
        self.classifier = nn.Sequential(*classifier)
        for layer in self.modules():
            if weight_init != "pytorch" and isinstance(layer, (nn.Conv2d, nn.Linear)):
                if weight_init == "keras":
                    nn.init.xavier_uniform_(layer.weight)
                else:  # keeps each ReLU layer's output variance, where PyTorch's default shrinks it
                    nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))
