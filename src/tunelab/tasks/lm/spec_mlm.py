"""Masked-token language modelling (task `mlm`, the adapt stage for encoders) as the training loop sees it.

Masks are drawn once per document with a fixed seed (tasks/lm/text.py: mlm_pieces), so every epoch, every resumed
run and every evaluation sees the same masked positions. The loss is summed over the masked tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tunelab.data import IGNORE
from tunelab.tasks.lm.metrics import PerplexityMetrics


class MaskedLM:
    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def collate(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n], labels[i, :n], mask[i, :n] = torch.as_tensor(r["input_ids"]), torch.as_tensor(r["labels"]), 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    def units(self, batch: dict) -> int:
        return int((batch["labels"] != IGNORE).sum())

    def forward(self, model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        keep = batch["labels"] != IGNORE
        loss = F.cross_entropy(logits[keep].float(), batch["labels"][keep], reduction="sum")
        return torch.stack([loss.detach(), torch.tensor(float(keep.sum()))]), loss

    def new_metrics(self):
        return PerplexityMetrics()
