"""Which device training and serving run on: a CUDA GPU, Apple silicon (MPS) or the CPU, chosen from what is there.

`Machine.probe()` asks torch what this machine has; `pick_device` is a pure function of that answer and the recipe's
`train.device` (auto | cpu | cuda | mps), so the choice is unit-tested on any machine by passing a made-up `Machine`.
The precision for the chosen device is decided next door, in precision.py, from the same `Machine`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from tunelab.errors import TunelabError

DEVICES = ("cuda", "mps", "cpu")  # auto takes the first one that is there


@dataclass(frozen=True)
class Machine:
    """What this machine has, as far as device and precision choices go."""

    cuda: bool = False
    mps: bool = False
    cuda_bf16: bool = False  # the GPU computes bf16 natively (Ampere and newer)
    cpu_bf16: bool = False  # the CPU has AVX-512 bf16 instructions (else bf16 matmuls are emulated, ~100x slower)

    @classmethod
    def probe(cls) -> "Machine":
        import torch

        cuda = torch.cuda.is_available()
        mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
        cpu = getattr(torch.backends, "cpu", None)
        isa = cpu.get_cpu_capability() if cpu else ""
        cpu_bf16 = "AVX512" in isa.upper() and bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())
        return cls(cuda=cuda, mps=mps, cuda_bf16=cuda and torch.cuda.is_bf16_supported(), cpu_bf16=cpu_bf16)

    def has(self, device: str) -> bool:
        return device == "cpu" or getattr(self, device)


def pick_device(choice: str = "auto", machine: Optional[Machine] = None) -> str:
    """The device to run on, "cuda", "mps" or "cpu": the first the machine has (auto), or the one asked for."""
    machine = machine or Machine.probe()
    if choice == "auto":
        return next(d for d in DEVICES if machine.has(d))
    if not machine.has(choice):
        found = ", ".join(d for d in DEVICES if machine.has(d))
        hint = {
            "cuda": "torch sees no CUDA GPU (a CPU-only torch build, no driver, or CUDA_VISIBLE_DEVICES empty)",
            "mps": "torch sees no Apple GPU (MPS needs Apple silicon, macOS 12.3+ and a torch build with MPS)",
        }.get(choice, "")
        raise TunelabError(
            f"train.device is '{choice}', but {hint}. This machine has: {found}. Use train.device: auto (the first of "
            "cuda, mps, cpu that is there) or one of those."
        )
    return choice
