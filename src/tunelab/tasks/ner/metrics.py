"""Streaming entity-level metrics for token classification, equal to seqeval's strict IOB2 mode.

Each batch's sub-token logits are mapped back to words (the first sub-token of each word, in the window that
owns it), entities are read per sentence, and only counts are kept: per type true positives, false positives
and false negatives, word accuracy, and a word-level confusion of entity types. The counts add across
processes, so evaluation memory stays flat in the dataset size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tunelab.data.tags import spans, split_tag


@dataclass
class WordOutputs:
    """What the token head hands to metrics and predictors: sub-token logits and the map back to words."""

    logits: torch.Tensor  # (windows, positions, tags)
    word_pos: torch.Tensor  # (windows, positions): the batch word a first sub-token stands for, -1 elsewhere
    labels: torch.Tensor  # (windows, positions): gold tag ids (at first sub-tokens at least)
    word_sentence: torch.Tensor  # (words,): the batch sentence of each word

    def words(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per word of the batch, in order: predicted tag id, its probability, gold tag id, sentence index."""
        at = self.word_pos >= 0
        index = self.word_pos[at]
        probs = torch.softmax(self.logits[at].float(), -1)
        score, pred = probs.max(-1)
        n = len(self.word_sentence)
        out = [
            torch.zeros(n, dtype=t.dtype, device=t.device).index_copy_(0, index, t)
            for t in (pred, score, self.labels[at])
        ]
        return *(t.cpu().numpy() for t in out), self.word_sentence.cpu().numpy()


def sentences(*arrays: np.ndarray, sentence: np.ndarray) -> list[tuple]:
    """Split parallel per-word arrays into per-sentence pieces."""
    cuts = np.flatnonzero(np.diff(sentence)) + 1
    return list(zip(*(np.split(a, cuts) for a in arrays)))


class EntityMetrics:
    """Entity precision/recall/F1 (micro over all entities, macro over types), per type, and word accuracy."""

    higher_is_better = {
        "f1": True,
        "precision": True,
        "recall": True,
        "f1_macro": True,
        "precision_macro": True,
        "recall_macro": True,
        "accuracy": True,
        "loss": False,
    }

    def __init__(self, tag_names: list[str]):
        self.tags = tag_names
        self.types = sorted({split_tag(t)[1] for t in tag_names if t != "O"})
        self.type_index = np.array([0 if t == "O" else 1 + self.types.index(split_tag(t)[1]) for t in tag_names])
        k = len(self.types)
        self.counts = np.zeros((3, k))  # rows: tp, fp, fn per type
        self.words = np.zeros(3)  # correct words, words, sentences
        self.confusion = np.zeros((k + 1, k + 1))  # word level, rows gold, columns predicted: O then the types

    def update(self, outputs: WordOutputs, labels: torch.Tensor | None = None) -> None:
        pred, _, gold, sentence = outputs.words()
        self.add(gold, pred, sentence)

    def add(self, gold: np.ndarray, pred: np.ndarray, sentence: np.ndarray) -> None:
        """Count words given as tag ids with the sentence of each (consecutive words of a sentence)."""
        for g, p in sentences(gold, pred, sentence=sentence):
            self.add_sentence([self.tags[i] for i in g], [self.tags[i] for i in p])
        np.add.at(self.confusion, (self.type_index[gold], self.type_index[pred]), 1)
        self.words += [(gold == pred).sum(), len(gold), 0]

    def add_sentence(self, gold: list[str], pred: list[str]) -> None:
        g, p = set(spans(gold)), set(spans(pred))
        for kind, counts in ((g & p, self.counts[0]), (p - g, self.counts[1]), (g - p, self.counts[2])):
            for t, _, _ in kind:
                counts[self.types.index(t)] += 1
        self.words[2] += 1

    def state(self) -> np.ndarray:
        return np.concatenate([self.counts.ravel(), self.words, self.confusion.ravel()])

    def load_state(self, total: np.ndarray) -> None:
        a, b = self.counts.size, self.counts.size + 3
        self.counts, self.words, self.confusion = (
            total[:a].reshape(self.counts.shape),
            total[a:b],
            total[b:].reshape(self.confusion.shape),
        )

    def compute(self) -> dict:
        tp, fp, fn = self.counts
        p, r, f1 = _prf(tp, fp, fn)
        seen = (tp + fp + fn) > 0  # seqeval averages over the types in gold or predictions
        micro = _prf(tp.sum(), fp.sum(), fn.sum())
        correct, words, n = self.words
        return {
            "precision": float(micro[0]),
            "recall": float(micro[1]),
            "f1": float(micro[2]),
            "precision_macro": float(p[seen].mean()) if seen.any() else 0.0,
            "recall_macro": float(r[seen].mean()) if seen.any() else 0.0,
            "f1_macro": float(f1[seen].mean()) if seen.any() else 0.0,
            "accuracy": float(correct / words) if words else 0.0,
            "entities": int(tp.sum() + fn.sum()),
            "predicted_entities": int(tp.sum() + fp.sum()),
            "per_type": {
                t: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f1[i]), "support": int(tp[i] + fn[i])}
                for i, t in enumerate(self.types)
            },
            "confusion_matrix": self.confusion.astype(int).tolist(),
            "labels": ["O"] + self.types,
            "n": int(n),
        }


def _prf(tp, fp, fn):
    tp, fp, fn = (np.asarray(x, dtype=float) for x in (tp, fp, fn))
    p = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
    r = np.divide(tp, tp + fn, out=np.zeros_like(tp), where=(tp + fn) > 0)
    f1 = np.divide(2 * p * r, p + r, out=np.zeros_like(tp), where=(p + r) > 0)
    return p, r, f1
