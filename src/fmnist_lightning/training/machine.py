"""The machine: the names of its chips (runs and benchmarks record them), and glibc's malloc
told to keep freed memory for the next training step."""

import ctypes
import ctypes.util
import os
import platform
from pathlib import Path

import torch


def gpu_model(device: torch.device) -> str | None:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else None


def cpu_model(cpu_info: str | None) -> str | None:
    """From lscpu, /proc/cpuinfo or macOS's sysctl text."""
    for line in (cpu_info or "").splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("model name", "name", "machdep.cpu.brand_string"):
            return value.strip()
    return None


def this_cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    text = cpuinfo.read_text() if cpuinfo.is_file() else None  # Linux's
    return cpu_model(text) or platform.processor() or None


MALLOPT_SETTINGS = (-3, -1)  # glibc's malloc.h: M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
MALLOC_ENVIRONMENT = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
KEEP_UP_TO = 1 << 30  # bytes: smaller blocks come from the heap, which keeps this much free


def keep_freed_memory() -> bool:
    """By default glibc returns freed blocks of more than 128 KiB to the kernel, so the next
    step faults its activations in afresh: a fifth of the speedrun's fit on a CPU (132 s against
    164 s). False (nothing changed) off glibc, or where the environment sets malloc's tunables."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if any(name in os.environ for name in MALLOC_ENVIRONMENT) or "glibc.malloc." in tunables:
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, some musl builds)
        return False
    return all(mallopt(setting, KEEP_UP_TO) == 1 for setting in MALLOPT_SETTINGS)
