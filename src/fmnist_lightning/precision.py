"""Choose the training precision: bf16 mixed where the hardware runs it natively, else fp32."""

import torch


def cpu_supports_bf16() -> bool:
    """True on CPUs with AVX-512 BF16 or AMX, where oneDNN runs bf16 convolutions natively."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def will_use_cuda(accelerator: str) -> bool:
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def resolve_precision(precision: str | int, accelerator: str = "auto") -> str | int:
    """Map ``auto`` to "bf16-mixed" where supported, otherwise "32-true"; pass others through."""
    if precision != "auto":
        return precision
    if will_use_cuda(accelerator):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"
    if accelerator in ("auto", "cpu") and cpu_supports_bf16():
        return "bf16-mixed"
    return "32-true"
