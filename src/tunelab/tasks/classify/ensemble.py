"""EnsembleClassifier: an ensemble run directory (kind "ensemble") used like any run — predict, evaluate, serve.

Each member is an ordinary TextClassifier; their outputs are combined as run.json's `method` says (mean, weighted,
vote: tunelab/ensembles/combine.py), and evaluation scores the combined predictions with the task's own metrics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tunelab.config import load_run_config
from tunelab.ensembles.combine import combine
from tunelab.ensembles.members import resolve
from tunelab.runs.rundir import RunDir
from tunelab.tasks.classify.data import check_known, read_labelled_file
from tunelab.tasks.classify.metrics import metrics_for
from tunelab.tasks.classify.predictor import TextClassifier, prediction_dicts


class EnsembleClassifier:
    """`ens = tunelab.load("runs/ensemble"); ens.predict(["text", ...])` — the same rows as TextClassifier's."""

    def __init__(self, run: RunDir, device: str | None = None):
        self.run, self.info = run, run.info
        self.members = [TextClassifier(RunDir.open(path), device) for path in resolve(run)]
        self.config = load_run_config(run / "config.yaml")
        first = self.members[0]
        self.task, self.labels, self.threshold = first.task, first.labels, first.threshold
        self.method = self.info["method"]
        self.weights = np.array([m["weight"] for m in self.info["members"]], dtype=np.float64)

    def combined(self, texts: list[str], pairs: list[str] | None = None, batch_size: int = 64):
        """(combined outputs, the labels a vote chose or None)."""
        outputs = [m.outputs(texts, pairs, batch_size) for m in self.members]
        return combine(self.task, self.method, outputs, self.weights, self.threshold)

    def predict(self, texts: list[str] | str, pairs: list[str] | None = None, batch_size: int = 64) -> list[dict]:
        if isinstance(texts, str):
            texts = [texts]
        outputs, chosen = self.combined(texts, pairs, batch_size)
        return prediction_dicts(self.task, self.labels.names, self.threshold, outputs, chosen)

    def read(self, path: str | Path) -> list[dict]:
        """A labelled file's records, read with the recipe's column names."""
        return read_labelled_file(Path(path), self.config)

    def evaluate(self, path: str | Path, batch_size: int = 64) -> dict:
        """Metrics on a labelled file, as a member's evaluate computes them."""
        return self.evaluate_records(self.read(path), batch_size)

    def evaluate_records(self, records: list[dict], batch_size: int = 64, with_members: bool = False):
        """The ensemble's metrics on labelled records; with_members: (those, [each member's, on the same pass])."""
        check_known(records, self.labels, "evaluation")
        pairs = [r.get("text_pair", "") for r in records] if any("text_pair" in r for r in records) else None
        outputs = [m.outputs([r["text"] for r in records], pairs, batch_size) for m in self.members]
        combined, chosen = combine(self.task, self.method, outputs, self.weights, self.threshold)
        gold = np.array([self.labels.encode(r["label"]) for r in records])
        mine = self.score(combined, chosen, gold)
        return (mine, [self.score(o, None, gold) for o in outputs]) if with_members else mine

    def score(self, outputs: np.ndarray, chosen, gold: np.ndarray) -> dict:
        """Loss and the task's metrics of outputs (probabilities, or values), the loss as spec.forward computes it."""
        metrics = metrics_for(self.task, self.labels.names, self.threshold)
        eps = 1e-12
        if self.task == "regression":
            loss, decided = np.mean((outputs[:, 0] - gold) ** 2), outputs
        elif self.task == "multilabel":
            p = np.clip(outputs, eps, 1 - eps)
            loss = np.mean(-(gold * np.log(p) + (1 - gold) * np.log(1 - p)))
            on = outputs > self.threshold if chosen is None else chosen
            decided = np.where(on, 30.0, -30.0)  # logits whose sigmoid is above the threshold exactly where on
        else:
            loss = np.mean(-np.log(np.clip(outputs[np.arange(len(gold)), gold], eps, None)))
            pick = outputs.argmax(1) if chosen is None else chosen
            decided = np.eye(len(self.labels.names))[pick]  # the chosen label as the argmax the metrics read
        metrics.update(torch.as_tensor(decided, dtype=torch.float32), torch.as_tensor(gold))
        return {"loss": float(loss), **metrics.compute()}
