"""FLOPs of a training step, counted by torch, and the FLOP/s peak of a large matrix product."""

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from fmnist_lightning.benchmark.harness import Windows, median_rate, timed_windows
from fmnist_lightning.models.module import build_network
from fmnist_lightning.training.builders import plain

FLOP_CONVENTION = (
    "torch.utils.flop_counter.FlopCounterMode over one forward and backward pass of the "
    "network in training mode: 2 FLOPs per multiply-add of the convolutions and matrix "
    "products (biases, activations, pooling and the optimiser step are not counted); the "
    "backward pass counts only the gradients autograd computes (none for the input images)"
)
# Images per counted pass: two, so that BatchNorm1d in training mode accepts the batch.
COUNTED_IMAGES = 2


@dataclass(frozen=True)
class FlopCount:
    """FLOPs per image of one forward pass and of one training step, and by operator."""

    forward: int
    train: int
    by_operator: dict[str, int]


def training_flops(network: nn.Module, input_shape: tuple[int, ...]) -> FlopCount:
    """Count one training step's FLOPs per image (forward + backward) with torch's FLOP counter.

    ``input_shape`` is one image's (channels, height, width). The network is used as it is
    (training mode, its own weights) and its gradients are cleared afterwards.
    """
    network.train()
    images = torch.zeros(COUNTED_IMAGES, *input_shape)
    labels = torch.zeros(COUNTED_IMAGES, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        logits = network(images)
        forward = counter.get_total_flops()
        F.cross_entropy(logits, labels).backward()
    network.zero_grad(set_to_none=True)
    by_operator = {
        str(op): count // COUNTED_IMAGES
        for op, count in counter.get_flop_counts()["Global"].items()
    }
    return FlopCount(
        forward // COUNTED_IMAGES, counter.get_total_flops() // COUNTED_IMAGES, by_operator
    )


def matmul_dtype(precision: str | int) -> torch.dtype:
    """The dtype the network's products run in under a Lightning precision."""
    text = str(precision)
    if text.startswith("bf16"):
        return torch.bfloat16
    return torch.float16 if text.startswith("16") else torch.float32


def matmul_products(a: torch.Tensor, b: torch.Tensor) -> dict[str, Callable[[], Any]]:
    """The kernels to try for the n x n x n product (2 n^3 FLOPs): torch.mm, and on CPU oneDNN's.

    On CPU, fp32 torch.mm goes to MKL, which on AMD processors with AVX-512 runs a slower
    AVX2 path, while the network's convolutions go to oneDNN. The same product as a 1x1
    convolution over a batch of 16 (below 16 images a single thread takes torch's own
    convolution instead) reaches oneDNN through public API.
    """
    products = {"torch.mm": lambda: torch.mm(a, b)}
    n = a.shape[0]
    if a.device.type == "cpu" and torch.backends.mkldnn.is_available() and n % 16 == 0:
        # Output[i, j] = sum_k a[i, k] b[k, j]: rows of a are 16 x (n / 16) image positions with
        # n channels each; b^T holds the n filters of n input channels.
        images = a.reshape(16, n // 16, n).permute(0, 2, 1).unsqueeze(-1).contiguous()
        filters = b.t().reshape(n, n, 1, 1).contiguous()
        products["onednn_conv1x1"] = lambda: F.conv2d(images, filters)
    return products


def matmul_peaks(
    n: int, dtype: torch.dtype, device: torch.device, repeats: int
) -> dict[str, float]:
    """Median FLOP/s of an n x n x n matrix product (2 n^3 FLOPs) in ``dtype``, per kernel."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=generator).to(device, dtype)
    b = torch.randn(n, n, generator=generator).to(device, dtype)
    windows = Windows(warmup=2, steps=3, repeats=max(repeats, 3))
    peaks = {}
    for name, product in matmul_products(a, b).items():
        with contextlib.suppress(RuntimeError):  # a kernel this build lacks
            seconds = timed_windows(product, windows, device)
            peaks[name] = median_rate(windows.steps * 2 * n**3, seconds)
    return peaks


def flop_figures(
    cfg: DictConfig,
    num_classes: int,
    images_per_s: float,
    matmul_size: int,
    device: torch.device,
    repeats: int = 3,
) -> dict[str, Any]:
    """Training FLOP/s achieved at ``images_per_s`` against the matrix-product peak in the same dtype."""
    # A fresh, uncompiled copy of the network: the count does not depend on its weights.
    network = build_network(plain(cfg.model.net), num_classes)
    size = int(cfg.model.net.get("image_size", 28))
    count = training_flops(network, (int(cfg.model.net.get("in_channels", 1)), size, size))
    dtype = matmul_dtype(cfg.trainer.precision)
    peaks = matmul_peaks(matmul_size, dtype, device, repeats)
    peak = max(peaks.values())
    achieved = images_per_s * count.train
    return {
        "convention": FLOP_CONVENTION,
        "forward_flops_per_image": count.forward,
        "train_flops_per_image": count.train,
        "train_flops_by_operator": count.by_operator,
        "achieved_train_flops": achieved,
        "matmul_size": matmul_size,
        "matmul_dtype": str(dtype).removeprefix("torch."),
        "matmul_peak_flops": peak,
        "fraction_of_matmul_peak": achieved / peak,
        "matmul_peak_flops_by_kernel": peaks,
    }
