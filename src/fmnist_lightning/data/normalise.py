"""The one mapping between pixels and network inputs, and its inverse for pictures."""

import torch


def normalise(pixels: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """(N, 28, 28) pixels in [0, 255] → float (N, 1, 28, 28), scaled to [0, 1] then standardised."""
    return ((pixels.float() / 255.0 - mean) / std).unsqueeze(1)


def denormalise(inputs: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """Network inputs back to pixel intensities in [0, 1], e.g. to draw them."""
    return (inputs.float() * std + mean).clamp(0, 1)
