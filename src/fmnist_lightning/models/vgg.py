"""The seed network: the VGG-style CNN of the Keras Fashion-MNIST tutorial, as a plain nn.Module."""

from collections.abc import Sequence

import torch
from torch import nn

WEIGHT_INITS = ("pytorch", "keras", "kaiming")


def conv_block(
    in_channels: int, widths: Sequence[int], kernel_sizes: Sequence[int], batch_norm: bool
) -> list[nn.Module]:
    """Convolutions with "same" padding and ReLU, closed by a 2x2 max-pool."""
    layers: list[nn.Module] = []
    for width, kernel_size in zip(widths, kernel_sizes, strict=True):
        # A conv followed by BatchNorm needs no bias: the norm's shift replaces it.
        layers.append(
            nn.Conv2d(in_channels, width, kernel_size, padding="same", bias=not batch_norm)
        )
        if batch_norm:
            layers.append(nn.BatchNorm2d(width))
        layers.append(nn.ReLU(inplace=True))
        in_channels = width
    return [*layers, nn.MaxPool2d(2)]


def initialise_weights(network: nn.Module, scheme: str) -> None:
    """Keep PyTorch's layer defaults, or re-draw conv/dense layers the way Keras does
    (Glorot-uniform) or for ReLU (Kaiming-normal, He et al. 2015); biases start at zero."""
    if scheme not in WEIGHT_INITS:
        raise ValueError(f"weight_init must be one of {', '.join(WEIGHT_INITS)}, got {scheme!r}.")
    for layer in network.modules():
        if scheme == "pytorch" or not isinstance(layer, (nn.Conv2d, nn.Linear)):
            continue
        if scheme == "keras":
            nn.init.xavier_uniform_(layer.weight)
        else:  # keeps each ReLU layer's output variance, where PyTorch's default shrinks it
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)


class VGGStyleCNN(nn.Module):
    """Conv 64 (7x7) → pool → 128, 128 → pool → 256, 256 → pool → dense 128 → 64 → classes.

    With the defaults it has exactly 1,413,834 parameters, the same as the Keras original.
    ``batch_norm`` puts BatchNorm after every convolution, ``dense_batch_norm`` after every
    hidden dense layer (both before the ReLU). ``weight_init``: "pytorch" (PyTorch's layer
    defaults), "keras" (Glorot-uniform weights and zero biases, as the original had) or
    "kaiming".
    """

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
        features: list[nn.Module] = []
        channels, size = in_channels, image_size
        for index, widths in enumerate(blocks):
            kernel_sizes = [kernel_size] * len(widths)
            if index == 0:
                kernel_sizes[0] = first_kernel_size
            features += conv_block(channels, widths, kernel_sizes, batch_norm)
            channels, size = widths[-1], size // 2
        self.features = nn.Sequential(*features)

        classifier: list[nn.Module] = [nn.Flatten()]
        width = channels * size * size
        for hidden in dense:
            classifier.append(nn.Linear(width, hidden, bias=not dense_batch_norm))
            if dense_batch_norm:
                classifier.append(nn.BatchNorm1d(hidden))
            classifier += [nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = hidden
        classifier.append(nn.Linear(width, num_classes))
        self.classifier = nn.Sequential(*classifier)
        initialise_weights(self, weight_init)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Map (N, 1, 28, 28) normalised images to (N, classes) logits."""
        return self.classifier(self.features(images))
