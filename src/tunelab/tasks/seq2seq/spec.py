"""Text-to-text as the training loop sees it: the loss on target tokens (decoder-only: the lm family's fused
linear cross-entropy; encoder-decoder: below), and, at each validation, generation metrics on a fixed sample."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from tunelab.data import IGNORE
from tunelab.data.padding import attention_mask, pad
from tunelab.tasks.seq2seq.metrics import Text2TextMetrics


class EncoderDecoderLM:
    """Spec for an AutoModelForSeq2SeqLM: rows of input_ids (the prompt) and labels (the target ids). The decoder is
    fed the labels shifted right (the model's own `prepare_decoder_input_ids_from_labels`); the loss is summed over
    the target tokens. The logits are built whole (targets are short: 128 x vocab per row), unlike the causal path."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def collate(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        ids = [r["input_ids"] for r in rows]
        return {
            "input_ids": pad(ids, self.pad_id),
            "attention_mask": attention_mask(ids),
            "labels": pad([r["labels"] for r in rows], IGNORE),
        }

    def units(self, batch: dict) -> int:
        return int((batch["labels"] != IGNORE).sum())

    def forward(self, model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        labels = batch["labels"]
        inner = getattr(model, "module", model)  # DDP
        decoder_input_ids = inner.prepare_decoder_input_ids_from_labels(labels=labels)
        logits = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            decoder_input_ids=decoder_input_ids,
            use_cache=False,
        ).logits
        keep = labels != IGNORE
        loss = F.cross_entropy(logits[keep].float(), labels[keep], reduction="sum")
        return torch.stack([loss.detach(), keep.sum().to(loss.dtype)]), loss

    def new_metrics(self):
        return Text2TextMetrics()


class Text2TextSpec:
    """The model kind's spec (collate, units, forward), with perplexity and generation metrics: `generation_metrics`
    is asked after each validation's loss pass (training/fit.py) and scores `validate(model)`."""

    def __init__(self, inner, validate: Callable[[object], dict]):
        self.inner, self.validate = inner, validate

    def collate(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        return self.inner.collate(rows)

    def units(self, batch: dict) -> int:
        return self.inner.units(batch)

    def forward(self, model, batch: dict):
        return self.inner.forward(model, batch)

    def new_metrics(self):
        return Text2TextMetrics()

    def generation_metrics(self, model) -> dict:
        return self.validate(model)
