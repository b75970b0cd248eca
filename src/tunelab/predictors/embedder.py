"""Embedder: sentence vectors from a run's fine-tuned encoder (classification family, ner, mlm), for search and
clustering and `POST /v1/embeddings`: the mean of the last hidden states over the real tokens, L2-normalised (the
pooling of sentence-transformers, whose all-MiniLM-L6-v2 is tunelab's default encoder)."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from tunelab.data.padding import attention_mask, pad
from tunelab.errors import TunelabError
from tunelab.predictors.common import load_run_model
from tunelab.registry import TASKS
from tunelab.runs.rundir import RunDir
from tunelab.training.precision import autocast, serving_precision

ENCODER_TASKS = tuple(name for name, family in TASKS.items() if "embeddings" in family.endpoints)


class Embedder:
    """`Embedder.from_run("runs/x").embed(["a text", ...])` -> float32 array (texts, hidden size), unit rows."""

    def __init__(self, model, tokenizer, max_length: int, precision: str = "fp32"):
        # an ONNX export (predictors/onnx.py) computes this very pooling in its file: its `embed` gives the vectors
        self.pooled = getattr(model, "embed", None)
        self.encoder = None if self.pooled else model.base_model  # the backbone without its task head (BertModel...)
        self.width = model.dimensions if self.pooled else self.encoder.config.hidden_size
        self.tokenizer, self.max_length = tokenizer, max_length
        self.device = next(model.parameters()).device
        self.precision = serving_precision(precision, self.device)

    @classmethod
    def from_run(cls, run_dir, device: Optional[str] = None) -> "Embedder":
        run = RunDir.open(run_dir)
        task = run.info.get("task")
        if task not in ENCODER_TASKS:
            raise TunelabError(
                f"{run.path}: a {task} run has no encoder to embed with (encoder runs: {ENCODER_TASKS})."
            )
        tokenizer, model, _ = load_run_model(run, device)
        pre = run.info.get("preprocessing", {})
        return cls(model, tokenizer, pre.get("max_length") or 512, pre.get("precision", "fp32"))

    @property
    def dimensions(self) -> int:
        return self.width

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]

    def embed(self, texts: list[str] | str, batch_size: int = 64) -> np.ndarray:
        return self.embed_ids(self.tokenize([texts] if isinstance(texts, str) else texts), batch_size)

    @torch.inference_mode()
    def embed_ids(self, ids: list[list[int]], batch_size: int = 64) -> np.ndarray:
        """Vectors for tokenised texts (what `tokenize` returns)."""
        order = np.argsort([-len(x) for x in ids], kind="stable")  # similar lengths together: less padding
        out = np.zeros((len(ids), self.dimensions), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = [ids[i] for i in order[start : start + batch_size]]
            batch = pad(rows, self.tokenizer.pad_token_id or 0).to(self.device)
            mask = attention_mask(rows).to(self.device)
            if self.pooled:
                out[order[start : start + batch_size]] = self.pooled(batch, mask)
                continue
            with autocast(self.precision, self.device):
                hidden = self.encoder(input_ids=batch, attention_mask=mask).last_hidden_state.float()
            weights = mask.unsqueeze(-1).float()
            mean = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
            out[order[start : start + batch_size]] = torch.nn.functional.normalize(mean, dim=-1).cpu().numpy()
        return out
