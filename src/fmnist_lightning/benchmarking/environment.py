"""The machine a benchmark ran on: torch's ``collect_env`` report, this process's threads and
versions, and its peak memory."""

import sys
from importlib.metadata import version
from resource import RUSAGE_SELF, getrusage

import torch
from torch.utils.collect_env import get_env_info

from fmnist_lightning.models.runtime import cpu_supports_bf16
from fmnist_lightning.training.machine import cpu_model, gpu_model

# collect_env lists torch's packages through pip, which a uv environment may lack; the
# libraries the training path runs on are read from the installed metadata too.
PACKAGES = ("lightning", "torchvision", "torchmetrics", "hydra-core", "numpy")


def environment(device: torch.device) -> dict:
    """``torch.utils.collect_env``'s report in full, and the facts of this process it lacks."""
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
        "versions": {"torch": info["torch_version"], **{name: version(name) for name in PACKAGES}},
        "collect_env": info,
    }


def memory(device: torch.device) -> dict:
    """Peak resident memory of the process (Linux reports KiB, macOS bytes), and of the GPU."""
    rss = getrusage(RUSAGE_SELF).ru_maxrss / 2 ** (20 if sys.platform == "darwin" else 10)
    gpu = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"peak_rss_mib": rss, "peak_gpu_mib": gpu}
