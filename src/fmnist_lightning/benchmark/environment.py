"""What the figures were measured on (torch's own environment report), and the memory they took."""

import resource
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import torch
from torch.utils.collect_env import get_env_info

from fmnist_lightning.models.runtime import cpu_supports_bf16
from fmnist_lightning.training.machine import cpu_model, gpu_model

# collect_env lists torch's packages through pip, which a uv environment may lack; the
# libraries the training path runs on are read from the installed metadata too.
PACKAGES = ("lightning", "torchvision", "torchmetrics", "hydra-core", "numpy")


def package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


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
            **{name: package_version(name) for name in PACKAGES},
        },
        "collect_env": info,
    }


def peak_rss_mib() -> float:
    """The process's peak resident set size (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def memory(device: torch.device) -> dict[str, float | None]:
    """Peak resident memory of the process, and the peak of GPU memory torch allocated."""
    return {
        "peak_rss_mib": peak_rss_mib(),
        "peak_gpu_mib": torch.cuda.max_memory_allocated(device) / 2**20
        if device.type == "cuda"
        else None,
    }
