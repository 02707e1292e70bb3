"""How a network runs on this machine: device, precision, autocast, torch.compile's wrapper.

One place for each rule, so that training, evaluation, inference and export agree:

- :func:`resolve_device`: "auto", "cpu", "cuda", "cuda:1" (and Lightning's "gpu") to a
  torch device, with a clear error where CUDA is asked for but absent;
- :func:`resolve_precision`: "auto" to bf16 mixed precision where the hardware runs it
  natively, else fp32;
- :func:`autocast_for`: the autocast context of a Lightning precision name;
- :func:`unwrapped`: the network itself (and :func:`unwrapped_name` a state-dict key of
  it), also when torch.compile wrapped it;
- :func:`keep_freed_memory`: glibc's malloc keeps freed memory for the next training step;
- :func:`gpu_model`, :func:`cpu_model`, :func:`this_cpu_model`: the names of the chips that
  timings were measured on (runs and benchmarks record them).
"""

import contextlib
import ctypes
import ctypes.util
import os
import platform
from pathlib import Path

import torch
from torch import nn


class DeviceUnavailableError(ValueError):
    """A device that was asked for but does not exist here (CUDA on a machine without it)."""


class UnknownDeviceError(DeviceUnavailableError):
    """A device name that names no device ("foo", "cuda:x")."""


DEVICE_CHOICES = "cpu, cuda, cuda:1 or auto"


def will_use_cuda(accelerator: str) -> bool:
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; "gpu" → CUDA; anything else as torch reads it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device("cuda" if device == "gpu" else device)
    except (RuntimeError, TypeError) as error:  # torch's "Invalid device string: ..."
        raise UnknownDeviceError(
            f"Unknown device '{device}': use {DEVICE_CHOICES} (CUDA when available)."
        ) from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError(
            f"Device '{device}' was requested but CUDA is not available here; "
            "use device='cpu', or 'auto' to take a GPU only when there is one."
        )
    return device


def cpu_supports_bf16() -> bool:
    """True on CPUs with AVX-512 BF16 or AMX, where oneDNN runs bf16 convolutions natively."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


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


def resolve_precision(precision: str | int, accelerator: str = "auto") -> str | int:
    """Map ``auto`` to "bf16-mixed" where supported, otherwise "32-true"; pass others through."""
    if precision != "auto":
        return precision
    if will_use_cuda(accelerator):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"
    if accelerator in ("auto", "cpu") and cpu_supports_bf16():
        return "bf16-mixed"
    return "32-true"


def autocast_for(precision: str | int, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16/fp16 autocast for Lightning's mixed-precision names, nothing for the others."""
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(str(precision))
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


COMPILED = "_orig_mod"  # where torch.compile's wrapper keeps the network


def unwrapped(network: nn.Module) -> nn.Module:
    """The network itself, also when it is wrapped by torch.compile."""
    return getattr(network, COMPILED, network)


def unwrapped_name(name: str) -> str:
    """A state-dict key of a network without the prefix torch.compile's wrapper adds."""
    return name.removeprefix(f"{COMPILED}.")


# mallopt's parameters (glibc's malloc.h) and the settings a user may have made themselves.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
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
    settings = (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD)
    return all(mallopt(setting, KEEP_UP_TO) == 1 for setting in settings)
