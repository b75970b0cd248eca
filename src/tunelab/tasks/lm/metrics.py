"""Perplexity = exp(mean cross-entropy per trained token).

Accumulated as (loss sum, tokens), which add across batches and processes."""

from __future__ import annotations

import math

import numpy as np
import torch


class PerplexityMetrics:
    higher_is_better = {"perplexity": False, "loss": False}

    def __init__(self):
        self.sums = np.zeros(2)  # summed loss, trained tokens

    def update(self, outputs: torch.Tensor, labels: torch.Tensor) -> None:
        """`outputs` is the spec's [loss sum, tokens] of the batch."""
        self.sums += outputs.detach().double().cpu().numpy()

    def state(self) -> np.ndarray:
        return self.sums

    def load_state(self, total: np.ndarray) -> None:
        self.sums = np.asarray(total, dtype=float)

    def compute(self) -> dict:
        loss, tokens = self.sums
        return {"perplexity": perplexity(loss / tokens) if tokens else float("nan"), "tokens": int(tokens)}


def perplexity(mean_loss: float) -> float:
    return math.exp(min(mean_loss, 50.0))  # capped: a diverged model reports a huge number, not inf
