"""The machine a run runs on: the names of its chips (runs and benchmarks record them), and
glibc's malloc told to keep freed memory for the next training step."""

import ctypes
import ctypes.util
import os
import platform
from pathlib import Path

import torch


def gpu_model(device: torch.device) -> str | None:
    """The GPU's name (e.g. "NVIDIA H200"), or None on a CPU."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else None


def cpu_model(cpu_info: str | None) -> str | None:
    """The processor's name from lscpu-like text ("Model name: ...", /proc/cpuinfo's
    "model name : ...", macOS's brand string), or None."""
    for line in (cpu_info or "").splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("model name", "name", "machdep.cpu.brand_string"):
            return value.strip()
    return None


def this_cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """This machine's processor name: /proc/cpuinfo on Linux, platform's elsewhere, or None."""
    try:
        return cpu_model(cpuinfo.read_text()) or platform.processor() or None
    except OSError:  # not Linux
        return platform.processor() or None


# mallopt's parameters (glibc's malloc.h: M_MMAP_THRESHOLD, M_TRIM_THRESHOLD), and the
# settings a user may have made themselves.
MALLOPT_SETTINGS = (-3, -1)
MALLOC_ENVIRONMENT = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
KEEP_UP_TO = 1 << 30  # bytes: smaller blocks come from the heap, which keeps this much free


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory for reuse instead of handing it back to the kernel.

    By default blocks of more than 128 KiB are mmap-ed and returned when freed, and the heap is
    trimmed, so the activations a training step frees are faulted in afresh by the next one:
    that cost a fifth of the speedrun's fit on a CPU (132 s against 164 s, the same weights).
    True when set; False (nothing changed) off glibc, or where the environment already sets
    glibc's malloc (e.g. MALLOC_TRIM_THRESHOLD_=131072, its default), which then wins.
    """
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if any(name in os.environ for name in MALLOC_ENVIRONMENT) or "glibc.malloc." in tunables:
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, some musl builds)
        return False
    return all(mallopt(setting, KEEP_UP_TO) == 1 for setting in MALLOPT_SETTINGS)
