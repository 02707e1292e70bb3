"""FLOPs of a training step, counted by torch, against the peak of a matrix product in the
dtype the network's products run in."""

import argparse
import contextlib

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from fmnist_lightning.benchmarking.timing import median_rate, timed_windows
from fmnist_lightning.models.hparams import plain
from fmnist_lightning.models.module import build_network

# Images per counted pass: two, so that BatchNorm1d in training mode accepts the batch. The
# schema refuses other than one channel, and the networks are built for 28 x 28 images.
COUNTED_IMAGES, IMAGE_SHAPE = 2, (1, 28, 28)


def training_flops(network: torch.nn.Module, input_shape: tuple = IMAGE_SHAPE) -> dict:
    """One training step's FLOPs per image of ``input_shape``, counted by torch."""
    network.train()
    with FlopCounterMode(display=False) as counter:
        logits = network(torch.zeros(COUNTED_IMAGES, *input_shape))
        forward = counter.get_total_flops()
        F.cross_entropy(logits, torch.zeros(COUNTED_IMAGES, dtype=torch.long)).backward()
    counts = counter.get_flop_counts()["Global"].items()
    return {
        "forward_flops_per_image": forward // COUNTED_IMAGES,
        "train_flops_per_image": counter.get_total_flops() // COUNTED_IMAGES,
        "train_flops_by_operator": {str(op): count // COUNTED_IMAGES for op, count in counts},
    }


def matmul_products(a: torch.Tensor, b: torch.Tensor) -> dict:
    """torch.mm, and on CPU oneDNN's: fp32 torch.mm goes to MKL (a slower AVX2 path on AMD),
    the convolutions to oneDNN, which this 1x1 convolution over 16 images reaches by public
    API (below 16 images a single thread takes torch's own convolution)."""
    products = {"torch.mm": lambda: torch.mm(a, b)}
    n = a.shape[0]
    if a.device.type == "cpu" and torch.backends.mkldnn.is_available() and n % 16 == 0:
        # Output[i, j] = sum_k a[i, k] b[k, j]: rows of a are 16 x (n / 16) image positions with
        # n channels each; b^T holds the n filters of n input channels.
        images = a.reshape(16, n // 16, n).permute(0, 2, 1).unsqueeze(-1).contiguous()
        filters = b.t().reshape(n, n, 1, 1).contiguous()
        products["onednn_conv1x1"] = lambda: F.conv2d(images, filters)
    return products


def flop_figures(cfg, args: argparse.Namespace, images_per_s: float, device: torch.device) -> dict:
    """Training FLOP/s achieved at ``images_per_s`` against the peak of an n x n matrix
    product (``--matmul-size``) in the dtype the network's products run in."""
    # A fresh, uncompiled copy of the network: the count does not depend on its weights.
    count = training_flops(build_network(plain(cfg.model.net), num_classes=10))
    kind = str(cfg.trainer.precision).split("-")[0]  # bf16-mixed, 16-mixed, 32-true, ...
    dtype = {"bf16": torch.bfloat16, "16": torch.float16}.get(kind, torch.float32)
    n = args.matmul_size or (8192 if device.type == "cuda" else 2048)
    a, b = torch.randn(2, n, n, generator=torch.Generator().manual_seed(0)).to(device, dtype)
    peaks = {}
    for name, product in matmul_products(a, b).items():
        with contextlib.suppress(RuntimeError):  # a kernel this build lacks
            seconds = timed_windows(product, 2, 3, max(args.repeats, 3), device)
            peaks[name] = median_rate(3 * 2 * n**3, seconds)
    achieved, peak = images_per_s * count["train_flops_per_image"], max(peaks.values())
    return count | {
        "achieved_train_flops": achieved,
        "matmul_size": n,
        "matmul_dtype": str(dtype).removeprefix("torch."),
        "matmul_peak_flops": peak,
        "fraction_of_matmul_peak": achieved / peak,
        "matmul_peak_flops_by_kernel": peaks,
    }
