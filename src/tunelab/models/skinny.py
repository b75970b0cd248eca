"""Faster linear layers for skinny inputs (a few rows: decoding a batch of replies one token at a time) on a CPU.

`F.linear(x, W)` computes x @ W.T. For 2 to 64 rows, MKL's kernel for that layout streams the weights badly; the
same product computed as (W @ x.T).T is up to 3x faster on the AVX2 machines measured here (SmolLM2-135M, all 211
matrices of one decoding step, fp32, Zen 3: 126 -> 54 ms for 2 rows, 136 -> 84 ms for 8, 164 -> 126 ms for 32).
One row stays on F.linear (already fast, and exactly what `model.generate` computes for a single prompt), and so do
long inputs (prefill, training). `use_skinny_matmuls` times both on the model's largest matrix first and keeps the
swap only where it wins, so a machine whose kernels differ is left alone. A forward, not weights: nothing is saved.
"""

from __future__ import annotations

import contextlib
import time
import types

import torch
import torch.nn.functional as F

MAX_ROWS = 64


def _skinny_forward(self, x: torch.Tensor) -> torch.Tensor:
    rows = x.numel() // x.shape[-1]
    if not 2 <= rows <= MAX_ROWS or x.dtype != self.weight.dtype:
        return F.linear(x, self.weight, self.bias)
    out = torch.mm(self.weight, x.reshape(rows, x.shape[-1]).T).T
    if self.bias is not None:
        out = out + self.bias
    return out.reshape(*x.shape[:-1], self.weight.shape[0])


def _faster(weight: torch.Tensor, rows: int = 8, repeats: int = 5) -> bool:
    x = torch.randn(rows, weight.shape[1], dtype=weight.dtype)

    def best(f) -> float:
        f()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            f()
            times.append(time.perf_counter() - start)
        return min(times)

    with torch.inference_mode():
        return best(lambda: torch.mm(weight, x.T)) < 0.9 * best(lambda: F.linear(x, weight))


def use_skinny_matmuls(model) -> bool:
    """Swap the skinny-input forward into every nn.Linear of a CPU fp32 model, if it is faster here."""
    linears = [m for m in model.modules() if type(m) is torch.nn.Linear]
    if not linears or linears[0].weight.device.type != "cpu" or linears[0].weight.dtype != torch.float32:
        return False
    if not _faster(max(linears, key=lambda m: m.weight.numel()).weight.detach()):
        return False
    for layer in linears:
        layer.forward = types.MethodType(_skinny_forward, layer)
    return True


@contextlib.contextmanager
def skinny_matmuls(model):
    """use_skinny_matmuls for the duration of a block (a generation inside a training run), then the plain forward
    back in every nn.Linear."""
    swapped = use_skinny_matmuls(model)
    try:
        yield swapped
    finally:
        if swapped:
            for layer in model.modules():
                if type(layer) is torch.nn.Linear and "forward" in layer.__dict__:
                    del layer.forward
