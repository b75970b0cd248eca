"""TextClassifier: batched prediction and evaluation for classification, multilabel and regression runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tunelab.config import load_run_config
from tunelab.models.first_token import first_token_only
from tunelab.predictors.common import load_run_model
from tunelab.runs.rundir import RunDir
from tunelab.tasks.classify.data import LabelSpace, check_known, read_labelled_file, read_records, tokenize
from tunelab.tasks.classify.spec import SequenceClassification
from tunelab.training.evaluate import evaluate
from tunelab.training.precision import autocast, serving_precision


class TextClassifier:
    """`clf = tunelab.load("runs/x"); clf.predict(["text", ...])`

    -> [{"label": ..., "score": ..., "scores": {...}}, ...]"""

    def __init__(self, run: RunDir, device: str | None = None):
        self.run = run
        self.info = run.info
        self.config = load_run_config(run / "config.yaml")
        self.task = self.info["task"]
        self.labels = LabelSpace.from_run(self.task, self.info["labels"])
        pre = self.info["preprocessing"]
        self.max_length, self.threshold, self.precision = pre["max_length"], pre["threshold"], pre["precision"]
        self.tokenizer, self.model, self.device = load_run_model(run, device)
        self.precision = serving_precision(self.precision, self.device)
        self.first_token_only = first_token_only(self.model)  # the head reads one token: the last layer computes one
        self.spec = SequenceClassification(
            self.task, self.labels.names, self.tokenizer.pad_token_id or 0, None, self.threshold
        )

    # ------------------------------------------------------------------ predict

    @torch.inference_mode()
    def logits(self, texts: list[str], pairs: list[str] | None = None, batch_size: int = 64) -> np.ndarray:
        enc = self.tokenizer(list(texts), pairs, truncation=True, max_length=self.max_length)
        ids = enc["input_ids"]
        order = np.argsort([-len(x) for x in ids], kind="stable")
        out = np.zeros((len(ids), self.labels.num_outputs), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            rows = [
                {
                    "input_ids": ids[i],
                    "labels": 0,
                    **(
                        {"token_type_ids": enc["token_type_ids"][i]}
                        if pairs is not None and "token_type_ids" in enc
                        else {}
                    ),
                }
                for i in idx
            ]
            batch = {k: v.to(self.device) for k, v in self.spec.collate(rows).items()}
            with autocast(self.precision, self.device):
                out[idx] = self.spec.logits(self.model, batch).float().cpu().numpy()
        return out

    def outputs(self, texts: list[str], pairs: list[str] | None = None, batch_size: int = 64) -> np.ndarray:
        """Per text: the label probabilities (softmax; a sigmoid per label, multilabel), or the value (regression)."""
        logits = self.logits(texts, pairs, batch_size)
        if self.task == "regression":
            return logits
        if self.task == "multilabel":
            return 1 / (1 + np.exp(-logits))
        probs = np.exp(logits - logits.max(1, keepdims=True))
        return probs / probs.sum(1, keepdims=True)

    def predict(self, texts: list[str] | str, pairs: list[str] | None = None, batch_size: int = 64) -> list[dict]:
        if isinstance(texts, str):
            texts = [texts]
        return prediction_dicts(self.task, self.labels.names, self.threshold, self.outputs(texts, pairs, batch_size))

    def decisions(self, records: list[dict], batch_size: int = 64) -> np.ndarray:
        """What each record is answered, as discrete choices an export is compared on: the label's index, or each
        label on or off (multilabel); none for a regression value (an empty row)."""
        pairs = [r.get("text_pair", "") for r in records] if any("text_pair" in r for r in records) else None
        outputs = self.outputs([r["text"] for r in records], pairs, batch_size)
        if self.task == "regression":
            return np.zeros((len(records), 0))
        return outputs > self.threshold if self.task == "multilabel" else outputs.argmax(1)[:, None]

    # ------------------------------------------------------------------ evaluate

    def examples(self, path: str | Path | None = None) -> list[dict]:
        """Labelled records of a file (read with the run's column names), or the run's own test split as it read it."""
        return read_labelled_file(Path(path), self.config) if path is not None else read_records(self.config).test

    def evaluate(self, path: str | Path, batch_size: int = 64) -> dict:
        """Metrics on a labelled file, read with the run's column names; the same evaluation code as training."""
        return self.evaluate_records(read_labelled_file(Path(path), self.config), batch_size)

    def evaluate_records(self, records: list[dict], batch_size: int = 64) -> dict:
        """Metrics on labelled records ({"text", "label"[, "text_pair"]}, labels as in the data files)."""
        check_known(records, self.labels, "evaluation")
        ds = tokenize(records, self.labels, self.tokenizer, self.max_length)
        return evaluate(
            self.model, ds.to_list(), ds["length"], self.spec, self.spec.new_metrics(), batch_size, self.precision
        )


def prediction_dicts(task: str, names: list[str], threshold: float, outputs: np.ndarray, chosen=None) -> list[dict]:
    """What predict returns per text, from outputs(): {"score"} (regression), {"labels", "scores"} (multilabel),
    {"label", "score", "scores"}. `chosen` overrides the labels the outputs would give (an ensemble's vote)."""
    if task == "regression":
        return [{"score": float(x[0])} for x in outputs]
    if task == "multilabel":
        on = outputs > threshold if chosen is None else chosen
        return [
            {"labels": [n for n, yes in zip(names, row_on) if yes], "scores": {n: float(p) for n, p in zip(names, row)}}
            for row, row_on in zip(outputs, on)
        ]
    best = outputs.argmax(1) if chosen is None else chosen
    return [
        {"label": names[int(i)], "score": float(row[int(i)]), "scores": {n: float(p) for n, p in zip(names, row)}}
        for row, i in zip(outputs, best)
    ]
