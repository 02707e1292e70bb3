"""The machine: FLOPs of a training step counted by torch, the FLOP/s peak of a large matrix
product, what the figures were measured on (torch's own environment report), and the memory
they took."""

import contextlib
import resource
import sys
from collections.abc import Callable
from importlib.metadata import version
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn
from torch.utils.collect_env import get_env_info
from torch.utils.flop_counter import FlopCounterMode

from fmnist_lightning.benchmark.measure import median_rate, timed_windows
from fmnist_lightning.models.module import build_network
from fmnist_lightning.models.runtime import cpu_supports_bf16
from fmnist_lightning.training.builders import plain
from fmnist_lightning.training.machine import cpu_model, gpu_model

FLOP_CONVENTION = (
    "torch.utils.flop_counter.FlopCounterMode over one forward and backward pass of the "
    "network in training mode: 2 FLOPs per multiply-add of the convolutions and matrix "
    "products (biases, activations, pooling and the optimiser step are not counted); the "
    "backward pass counts only the gradients autograd computes (none for the input images)"
)
# Images per counted pass: two, so that BatchNorm1d in training mode accepts the batch.
COUNTED_IMAGES = 2
# collect_env lists torch's packages through pip, which a uv environment may lack; the
# libraries the training path runs on are read from the installed metadata too.
PACKAGES = ("lightning", "torchvision", "torchmetrics", "hydra-core", "numpy")


class FlopCount(NamedTuple):
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
    counts = counter.get_flop_counts()["Global"].items()
    by_operator = {str(op): count // COUNTED_IMAGES for op, count in counts}
    total = counter.get_total_flops()
    return FlopCount(forward // COUNTED_IMAGES, total // COUNTED_IMAGES, by_operator)


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


def flop_figures(
    cfg: DictConfig, images_per_s: float, matmul_size: int, device: torch.device, repeats: int
) -> dict[str, Any]:
    """Training FLOP/s achieved at ``images_per_s`` against the matrix-product peak in the same
    dtype (the one the network's products run in under the Lightning precision)."""
    # A fresh, uncompiled copy of the network: the count does not depend on its weights.
    network = build_network(plain(cfg.model.net), num_classes=10)
    size = int(cfg.model.net.get("image_size", 28))
    count = training_flops(network, (int(cfg.model.net.get("in_channels", 1)), size, size))
    precision = str(cfg.trainer.precision)
    dtype = torch.bfloat16 if precision.startswith("bf16") else torch.float32
    dtype = torch.float16 if precision.startswith("16") else dtype
    n = matmul_size
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=generator).to(device, dtype) for _ in range(2))
    peaks = {}
    for name, product in matmul_products(a, b).items():
        with contextlib.suppress(RuntimeError):  # a kernel this build lacks
            seconds = timed_windows(product, 2, 3, max(repeats, 3), device)
            peaks[name] = median_rate(3 * 2 * n**3, seconds)
    achieved = images_per_s * count.train
    return {
        "convention": FLOP_CONVENTION,
        "forward_flops_per_image": count.forward,
        "train_flops_per_image": count.train,
        "train_flops_by_operator": count.by_operator,
        "achieved_train_flops": achieved,
        "matmul_size": n,
        "matmul_dtype": str(dtype).removeprefix("torch."),
        "matmul_peak_flops": max(peaks.values()),
        "fraction_of_matmul_peak": achieved / max(peaks.values()),
        "matmul_peak_flops_by_kernel": peaks,
    }


def environment(device: torch.device) -> dict[str, Any]:
    """``torch.utils.collect_env.get_env_info()`` in full, and the facts of this process it lacks."""
    info = get_env_info()._asdict()
    return {
        "device": str(device),
        # collect_env lists every GPU; this is the one the benchmark ran on.
        "gpu_model": gpu_model(device),
        "cpu_model": cpu_model(info["cpu_info"]),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        # The rule that turns trainer.precision=auto into bf16-mixed (models.runtime).
        "cpu_bf16": cpu_supports_bf16(),
        "python": info["python_version"],
        "platform": info["python_platform"],
        "versions": {
            "torch": info["torch_version"],
            **{name: version(name) for name in PACKAGES},
        },
        "collect_env": info,
    }


def memory(device: torch.device) -> dict[str, float | None]:
    """Peak resident memory of the process (Linux reports KiB, macOS bytes), and the peak of
    GPU memory torch allocated."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    gpu = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {
        "peak_rss_mib": peak / (2**20 if sys.platform == "darwin" else 2**10),
        "peak_gpu_mib": gpu,
    }
