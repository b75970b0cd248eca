"""The arithmetic of an ensemble, on arrays only (no models): mean, weighted mean and vote, and the member weights.

Each member's output is an (examples, outputs) array, by the family's kind of target (the registry's `target`):
probabilities for a single-label target (softmax) and a multi-label one (sigmoid per label), the predicted value for
a real-valued one (one column).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from tunelab.registry import TASKS

METHODS = ("mean", "weighted", "vote")


def methods_for(target: Optional[str]) -> tuple[str, ...]:
    """The methods that combine members of this kind of target: a real-valued target's values are averaged (mean);
    labels can also be averaged with weights or voted on."""
    return ("mean",) if target == "real-valued" else METHODS


def member_weights(values: Sequence[float], higher_is_better: bool) -> np.ndarray:
    """w_i ∝ metric_i when higher is better, ∝ 1/metric_i when lower is better; they sum to 1."""
    v = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(v)) or np.any(v < 0) or (not higher_is_better and np.any(v == 0)) or v.sum() == 0:
        raise ValueError(f"validation metrics {v.tolist()} give no weights")
    w = v if higher_is_better else 1.0 / v
    return w / w.sum()


def average(outputs: Sequence[np.ndarray], weights: Optional[np.ndarray] = None) -> np.ndarray:
    """The (weighted) mean of the members' outputs; equal weights when none are given."""
    stack = np.stack([np.asarray(o, dtype=np.float64) for o in outputs])
    w = np.full(len(stack), 1.0 / len(stack)) if weights is None else np.asarray(weights, dtype=np.float64)
    return np.tensordot(w, stack, axes=1)


def vote(probs: Sequence[np.ndarray]) -> np.ndarray:
    """Single-label: each member votes for its most probable label; the majority wins, a tie goes to the tied label
    with the highest mean probability. Returns the winning label index per example."""
    stack = np.stack([np.asarray(p, dtype=np.float64) for p in probs])  # (members, examples, labels)
    counts = np.zeros(stack.shape[1:], dtype=np.int64)
    np.add.at(counts, (np.arange(stack.shape[1])[None, :], stack.argmax(-1)), 1)
    tied = counts == counts.max(-1, keepdims=True)
    return np.where(tied, stack.mean(0), -np.inf).argmax(-1)


def vote_per_label(probs: Sequence[np.ndarray], threshold: float) -> np.ndarray:
    """Multilabel: a label is on when more than half of the members put it above the threshold; with as many for as
    against, the mean probability decides. Returns a boolean (examples, labels) array."""
    stack = np.stack([np.asarray(p, dtype=np.float64) for p in probs])
    yes = (stack > threshold).sum(0) * 2
    return np.where(yes == len(stack), stack.mean(0) > threshold, yes > len(stack))


def combine(task: str, method: str, outputs: Sequence[np.ndarray], weights: np.ndarray, threshold: float = 0.5):
    """(combined outputs, chosen labels or None): `mean` and `weighted` average the outputs (the labels follow from
    them); `vote` averages them too (the scores reported) and chooses the labels by majority: per label where the
    task's target is multi-label, one label per example otherwise."""
    target = TASKS[task].target
    if method not in methods_for(target):
        raise ValueError(f"method {method!r} for task {task!r}")
    combined = average(outputs, weights if method == "weighted" else None)
    if method != "vote":
        return combined, None
    return combined, vote_per_label(outputs, threshold) if target == "multi-label" else vote(outputs)
