"""Masked-token language modelling (task `mlm`, the adapt stage for encoders) as the training loop sees it.

Masks are drawn once per document with a fixed seed (tasks/lm/text.py: mlm_pieces), so every epoch, every resumed
run and every evaluation sees the same masked positions. The loss is summed over the masked tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tunelab.data import IGNORE
from tunelab.data.padding import attention_mask, pad
from tunelab.tasks.lm.metrics import PerplexityMetrics


class MaskedLM:
    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def collate(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        inputs = [r["input_ids"] for r in rows]
        return {"input_ids": pad(inputs, self.pad_id), "attention_mask": attention_mask(inputs),
                "labels": pad([r["labels"] for r in rows], IGNORE)}  # fmt: skip

    def units(self, batch: dict) -> int:
        return int((batch["labels"] != IGNORE).sum())

    def forward(self, model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        keep = batch["labels"] != IGNORE
        loss = F.cross_entropy(logits[keep].float(), batch["labels"][keep], reduction="sum")
        return torch.stack([loss.detach(), torch.tensor(float(keep.sum()))]), loss

    def new_metrics(self):
        return PerplexityMetrics()
