"""Causal (GPT-style) language modelling as the training loop sees it, with a memory-lean loss.

The model runs with `logits_to_keep` set to keep no position, so it never builds batch x length x vocab
logits; the final hidden states of only the trained positions go through the output head in chunks, each
chunk's logits recomputed in backward instead of stored (activation checkpointing). Peak loss memory is one
chunk x vocab, whatever the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from tunelab.data.packing import IGNORE, collate
from tunelab.metrics.perplexity import PerplexityMetrics

CHUNK = 1024  # positions per head chunk: 1024 x 49k vocab x 4 bytes = 200 MB at a time


def chunked_cross_entropy(hidden: torch.Tensor, head: torch.nn.Linear, targets: torch.Tensor, chunk: int = CHUNK) -> torch.Tensor:
    """sum over rows of cross_entropy(head(hidden[i]), targets[i]), never holding more than `chunk` rows of logits."""
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, hidden.shape[0], chunk):
        h, t = hidden[start:start + chunk], targets[start:start + chunk]
        if torch.is_grad_enabled():
            total = total + checkpoint(_ce_sum, h, head.weight, head.bias, t, use_reentrant=False)
        else:
            total = total + _ce_sum(h, head.weight, head.bias, t)
    return total


def _ce_sum(h, weight, bias, targets):
    return F.cross_entropy(F.linear(h, weight, bias).float(), targets, reduction="sum")


def trained_hidden_states(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden states that predict a trained token, those tokens): position t predicts label t+1."""
    labels = batch["labels"]
    keep = labels[:, 1:] != IGNORE
    out = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False, output_hidden_states=True,
                logits_to_keep=torch.zeros_like(labels, dtype=torch.bool))  # no logits from the model itself
    hidden = out.hidden_states[-1][:, :-1][keep]  # the last entry is the final (normed) hidden state
    return hidden, labels[:, 1:][keep]


def output_head(model) -> torch.nn.Linear:
    return getattr(model, "module", model).get_output_embeddings()  # DDP wraps the model in .module


class CausalLM:
    """Spec for tunelab.training.fit: rows of input_ids / labels / position_ids; the loss is summed over trained tokens."""

    def __init__(self, pad_id: int, chunk: int = CHUNK):
        self.pad_id, self.chunk = pad_id, chunk

    def collate(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        return collate(rows, self.pad_id)

    def units(self, batch: dict) -> int:
        return int((batch["labels"][:, 1:] != IGNORE).sum())

    def forward(self, model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, targets = trained_hidden_states(model, batch)
        loss = chunked_cross_entropy(hidden, output_head(model), targets, self.chunk)
        return torch.stack([loss.detach(), torch.tensor(float(targets.numel()))]), loss

    def new_metrics(self):
        return PerplexityMetrics()
