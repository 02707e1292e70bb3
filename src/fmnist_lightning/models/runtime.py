"""How a network runs (device, precision, autocast, torch.compile's wrapper): one rule each,
so that training, evaluation, inference and export agree."""

import contextlib

import torch
from torch import nn

from fmnist_lightning.errors import UsageError

DEVICE_CHOICES = "cpu, cuda, cuda:1 or auto"


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; "gpu" → CUDA; others as torch reads them."""
    aliases = {"auto": "cuda" if torch.cuda.is_available() else "cpu", "gpu": "cuda"}
    try:
        device = torch.device(aliases.get(device, device))
    except (RuntimeError, TypeError) as error:  # torch's "Invalid device string: ..."
        message = f"Unknown device '{device}': use {DEVICE_CHOICES} (CUDA when available)."
        raise UsageError(message) from error
    if device.type == "cuda" and not torch.cuda.is_available():
        message = f"Device '{device}' was requested but CUDA is not available here"
        raise UsageError(f"{message}; use device='cpu' or 'auto'.")
    return device


def cpu_supports_bf16() -> bool:
    """True on CPUs with AVX-512 BF16 or AMX, where oneDNN runs bf16 convolutions natively."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def resolve_precision(precision: str | int, accelerator: str = "auto") -> str | int:
    """``auto`` → "bf16-mixed" where the hardware runs it natively, else "32-true"."""
    if precision != "auto":
        return precision
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"
    return "bf16-mixed" if accelerator in ("auto", "cpu") and cpu_supports_bf16() else "32-true"


def autocast_for(precision: str | int, device: torch.device) -> contextlib.AbstractContextManager:
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(str(precision))
    return torch.autocast(device.type, dtype) if dtype else contextlib.nullcontext()


COMPILED = "_orig_mod"  # where torch.compile's wrapper keeps the network


def unwrapped(network: nn.Module) -> nn.Module:
    return getattr(network, COMPILED, network)
