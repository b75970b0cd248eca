"""Streaming metrics for sequence-level tasks: each keeps sums, never logits, and the sums add across processes.

acc = ConfusionMetrics(names); for batch: acc.update(logits, labels); acc.compute()
"""

from __future__ import annotations

import math

import numpy as np
import torch


class ConfusionMetrics:
    """Single-label classification: a confusion matrix, from which every metric follows."""

    higher_is_better = {"accuracy": True, "f1_macro": True, "f1_micro": True, "f1_weighted": True, "loss": False}

    def __init__(self, names: list[str]):
        self.names = names
        self.matrix = np.zeros((len(names), len(names)), dtype=np.int64)  # rows: true, cols: predicted

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        pred = logits.argmax(-1).cpu().numpy()
        np.add.at(self.matrix, (labels.cpu().numpy(), pred), 1)

    def state(self) -> np.ndarray:
        return self.matrix

    def load_state(self, total: np.ndarray) -> None:
        self.matrix = total

    def compute(self) -> dict:
        m = self.matrix.astype(float)
        tp = np.diag(m)
        support, predicted = m.sum(1), m.sum(0)
        precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
        recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
        f1 = np.divide(
            2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=(precision + recall) > 0
        )
        n = m.sum()
        present = support > 0
        out = {
            "accuracy": float(tp.sum() / n) if n else 0.0,
            "precision_macro": float(precision[present].mean()) if present.any() else 0.0,
            "recall_macro": float(recall[present].mean()) if present.any() else 0.0,
            "f1_macro": float(f1[present].mean()) if present.any() else 0.0,
            "f1_micro": float(tp.sum() / n) if n else 0.0,  # = accuracy for single-label
            "f1_weighted": float((f1 * support).sum() / n) if n else 0.0,
            "per_class": {
                name: {
                    "precision": float(precision[i]),
                    "recall": float(recall[i]),
                    "f1": float(f1[i]),
                    "support": int(support[i]),
                }
                for i, name in enumerate(self.names)
            },
            "confusion_matrix": self.matrix.tolist(),
            "labels": list(self.names),
            "n": int(n),
        }
        return out


class MultiLabelMetrics:
    """Multi-label: per-label tp/fp/fn and the sum of per-example F1 (sample-F1)."""

    higher_is_better = {"f1_samples": True, "f1_micro": True, "f1_macro": True, "subset_accuracy": True, "loss": False}

    def __init__(self, names: list[str], threshold: float = 0.5):
        self.names, self.threshold = names, threshold
        self.counts = np.zeros((4, len(names)), dtype=np.float64)  # tp, fp, fn, support
        self.sums = np.zeros(3)  # sample-F1 sum, exact-match count, n

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        pred = (torch.sigmoid(logits.float()) > self.threshold).cpu().numpy()
        gold = labels.cpu().numpy() > 0.5
        tp, fp, fn = (pred & gold), (pred & ~gold), (~pred & gold)
        self.counts += np.stack([tp.sum(0), fp.sum(0), fn.sum(0), gold.sum(0)])
        denom = 2 * tp.sum(1) + fp.sum(1) + fn.sum(1)
        sample_f1 = np.where(
            denom > 0, 2 * tp.sum(1) / np.maximum(denom, 1), 1.0
        )  # nothing to predict, nothing predicted: 1
        self.sums += [sample_f1.sum(), (pred == gold).all(1).sum(), len(pred)]

    def state(self) -> np.ndarray:
        return np.concatenate([self.counts.ravel(), self.sums])

    def load_state(self, total: np.ndarray) -> None:
        k = self.counts.size
        self.counts, self.sums = total[:k].reshape(self.counts.shape), total[k:]

    def compute(self) -> dict:
        tp, fp, fn, support = self.counts
        p = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
        r = np.divide(tp, tp + fn, out=np.zeros_like(tp), where=(tp + fn) > 0)
        f1 = np.divide(2 * p * r, p + r, out=np.zeros_like(tp), where=(p + r) > 0)
        micro_den = 2 * tp.sum() + fp.sum() + fn.sum()
        n = self.sums[2]
        return {
            "f1_samples": float(self.sums[0] / n) if n else 0.0,
            "f1_micro": float(2 * tp.sum() / micro_den) if micro_den else 0.0,
            "f1_macro": float(f1.mean()) if len(f1) else 0.0,
            "subset_accuracy": float(self.sums[1] / n) if n else 0.0,
            "per_class": {
                name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f1[i]), "support": int(support[i])}
                for i, name in enumerate(self.names)
            },
            "threshold": self.threshold,
            "n": int(n),
        }


class RegressionMetrics:
    """MSE, MAE, R² and Pearson r from running sums."""

    higher_is_better = {"mse": False, "mae": False, "r2": True, "pearson": True, "loss": False}

    def __init__(self):
        self.sums = np.zeros(7)  # n, Σy, Σy², Σp, Σp², Σyp, Σ|y-p|

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        p = logits.float().reshape(-1).cpu().double().numpy()
        y = labels.float().reshape(-1).cpu().double().numpy()
        self.sums += [len(y), y.sum(), (y * y).sum(), p.sum(), (p * p).sum(), (y * p).sum(), np.abs(y - p).sum()]

    def state(self) -> np.ndarray:
        return self.sums

    def load_state(self, total: np.ndarray) -> None:
        self.sums = total

    def compute(self) -> dict:
        n, sy, syy, sp, spp, syp, sabs = self.sums
        if n == 0:
            return {"mse": 0.0, "mae": 0.0, "r2": 0.0, "pearson": 0.0, "n": 0}
        sse = syy - 2 * syp + spp
        var_y = syy - sy * sy / n
        var_p = spp - sp * sp / n
        cov = syp - sy * sp / n
        return {
            "mse": float(sse / n),
            "mae": float(sabs / n),
            "r2": float(1 - sse / var_y) if var_y > 0 else 0.0,
            "pearson": float(cov / math.sqrt(var_y * var_p)) if var_y > 0 and var_p > 0 else 0.0,
            "n": int(n),
        }


def metrics_for(task: str, names: list[str], threshold: float = 0.5):
    if task == "regression":
        return RegressionMetrics()
    if task == "multilabel":
        return MultiLabelMetrics(names, threshold)
    return ConfusionMetrics(names)
