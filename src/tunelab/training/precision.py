"""Mixed precision: in which precision a device trains and serves (master weights always stay fp32).

precision  CUDA                                   MPS (Apple)         CPU
auto       bf16 if the GPU has it, else fp16      fp32                bf16 with AVX-512 bf16, else fp32 (as always)
bf16       bf16 autocast                          bf16 autocast       bf16 autocast (emulated without AVX-512 bf16)
fp16       fp16 autocast + gradient scaler        fp16 + scaler       refused: no CPU computes fp16 fast
fp32       fp32                                   fp32                fp32

fp16 needs the gradient scaler (training/fit.py) because its narrow range flushes small gradients to zero; bf16 has
fp32's range and needs none. MPS stays fp32 under auto: torch's MPS autocast covers fewer ops than CUDA's, and no MPS
machine runs these tests, so the faster paths there are the user's explicit choice.
"""

from __future__ import annotations

import contextlib
from typing import Optional

import torch

from tunelab.errors import TunelabError
from tunelab.training.devices import Machine

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def has_fast_bf16(device: torch.device, machine: Optional[Machine] = None) -> bool:
    machine = machine or Machine.probe()
    return {"cuda": machine.cuda_bf16, "cpu": machine.cpu_bf16}.get(torch.device(device).type, False)


def resolve(precision: str, device: torch.device, machine: Optional[Machine] = None) -> str:
    """auto -> bf16, fp16 or fp32 for this device (the table above); an explicit choice as given, fp16 on a CPU
    refused."""
    machine = machine or Machine.probe()
    kind = torch.device(device).type
    if precision == "auto":
        if has_fast_bf16(device, machine):
            return "bf16"
        return "fp16" if kind == "cuda" else "fp32"  # a GPU before Ampere: fp16 with the scaler is its fast path
    if precision == "fp16" and kind == "cpu":
        # refused rather than mapped: a CPU without a GPU has no fast fp16 matmul (fp16 would be slower than fp32
        # and less exact), and silently training in another precision than the recipe says hides the mistake
        raise TunelabError(
            "train.precision: fp16 is for GPUs without bf16, and this run is on the CPU, where fp16 is emulated "
            "(slower than fp32). Use precision: auto (bf16 where the CPU has fast bf16, else fp32) or fp32."
        )
    return precision


def needs_scaler(precision: str) -> bool:
    """Whether the loop scales the loss (fp16 only: bf16 and fp32 gradients do not underflow)."""
    return precision == "fp16"


def autocast(precision: str, device: torch.device):
    if precision in DTYPES:
        return torch.autocast(device_type=device.type, dtype=DTYPES[precision])
    return contextlib.nullcontext()


def serving_precision(recorded: str, device: torch.device) -> str:
    """The precision to predict in: the run's own, except a low precision the device cannot compute fast (a run
    trained in bf16 on an AVX-512 bf16 machine or a GPU, served on a laptop, where bf16 matmuls are emulated a hundred
    times slower; a run trained in fp16 on a GPU, served on a CPU) -> fp32."""
    if recorded == "bf16" and not has_fast_bf16(device):
        return "fp32"
    if recorded == "fp16" and torch.device(device).type == "cpu":
        return "fp32"
    return recorded
