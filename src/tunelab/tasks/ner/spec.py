"""The ner spec, as the training loop sees it: collate windows, count labelled sub-tokens, forward to the summed loss
and the word outputs the entity metrics read."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tunelab.data import IGNORE
from tunelab.tasks.ner.data import collate as collate_windows
from tunelab.tasks.ner.metrics import EntityMetrics, WordOutputs


class TokenClassification:
    """One tag per word (NER): softmax + cross-entropy over labelled sub-tokens, entity metrics over words.

    A row is a sentence, possibly several windows long (see tasks/ner/data.py); the loss is summed over labelled
    sub-tokens, and the loop divides by those of the whole optimizer step.
    """

    MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")

    def __init__(self, tag_names: list[str], pad_id: int):
        self.names, self.pad_id = tag_names, pad_id

    def collate(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        return collate_windows(rows, self.pad_id)

    def units(self, batch: dict) -> int:
        return int((batch["labels"] != IGNORE).sum())

    def forward(self, model, batch: dict) -> tuple[WordOutputs, torch.Tensor]:
        logits = model(**{k: v for k, v in batch.items() if k in self.MODEL_INPUTS}).logits.float()
        loss = F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=IGNORE, reduction="sum")
        return WordOutputs(logits, batch["word_pos"], batch["labels"], batch["word_sentence"]), loss

    def new_metrics(self):
        return EntityMetrics(self.names)
