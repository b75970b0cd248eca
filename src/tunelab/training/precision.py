"""Mixed precision: bf16 autocast where the hardware has fast bf16 (master weights stay fp32)."""

from __future__ import annotations

import contextlib

import torch


def has_fast_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        cpu = getattr(torch.backends, "cpu", None)
        isa = cpu.get_cpu_capability() if cpu else ""
        return "AVX512" in isa.upper() and bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())
    return False


def resolve(precision: str, device: torch.device) -> str:
    """auto -> bf16 or fp32 for this device."""
    if precision == "auto":
        return "bf16" if has_fast_bf16(device) else "fp32"
    return precision


def autocast(precision: str, device: torch.device):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def serving_precision(recorded: str, device: torch.device) -> str:
    """The precision to predict in: the run's own, except bf16 on a device without fast bf16 (a run trained on an
    AVX-512 bf16 machine, served on a laptop, where bf16 matmuls are emulated a hundred times slower) -> fp32."""
    return "fp32" if recorded == "bf16" and not has_fast_bf16(device) else recorded
