"""Error analysis of the test split, gathered in the same pass that computes the test metrics.

errors.csv      the 200 highest-loss test examples (text, label, prediction, probability, loss), kept with a bounded
                heap per process, so memory stays flat however large the test split is
confusions.md   single-label: the most-confused label pairs with their worst examples; multilabel: the most-missed and
                the most-spurious labels; regression: the largest residuals; and for all, the test metric by length
metrics.json    "by_length": accuracy (multilabel: exact match; regression: MSE) per token-length bucket
"""

from __future__ import annotations

import heapq
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tunelab.data.predict_io import write_csv
from tunelab.tasks.classify.calibration import CalibrationSums

KEEP = 200
EDGES = (16, 32, 64, 128, 256, 512)  # token-length buckets: <=16, 17-32, ..., >512


def bucket_names() -> list[str]:
    lows = (0,) + EDGES
    return [f"{lo + 1}-{hi}" for lo, hi in zip(lows, EDGES)] + [f">{EDGES[-1]}"]


class ErrorAnalysis:
    """An evaluate() accumulator for the test split: the KEEP highest-loss examples, the metric by length bucket,
    per-label misses and false alarms (multilabel), and the calibration sums with and without the temperature
    (single-label; `temperature` is the one folded into the model, so `before` multiplies it back)."""

    def __init__(self, task: str, names: list[str], lengths, threshold: float = 0.5, temperature: float = 1.0,
                 rank: int = 0, world: int = 1):  # fmt: skip
        self.task, self.names, self.threshold = task, names, threshold
        self.rank, self.world = rank, world
        self.bucket = np.searchsorted(np.asarray(EDGES), np.asarray(lengths), side="left")
        self.width = 1 if task == "regression" else len(names)
        self.heap: list = []  # (loss, index, outputs) of this process's worst examples, smallest loss on top
        self.buckets = np.zeros((2, len(EDGES) + 1))  # n, correct (regression: squared error)
        self.labels = np.zeros((2, len(names)))  # multilabel: missed, spurious per label
        self.after = CalibrationSums(1.0) if task == "classification" else None
        self.before = CalibrationSums(temperature) if task == "classification" else None
        self._gathered = None

    def update(self, logits: torch.Tensor, labels: torch.Tensor, index) -> None:
        z, index = logits.float(), np.asarray(index)
        if self.task == "classification":
            y = labels.long()
            logp = F.log_softmax(z, -1)
            loss = -logp.gather(-1, y[:, None])[:, 0]
            outputs, good = logp.exp(), (z.argmax(-1) == y).double()
            self.after.update(z, y)
            self.before.update(z, y)
        elif self.task == "multilabel":
            outputs = torch.sigmoid(z)
            gold, pred = labels > 0.5, outputs > self.threshold
            loss = F.binary_cross_entropy_with_logits(z, labels.float(), reduction="none").mean(-1)
            good = (pred == gold).all(-1).double()
            self.labels += np.stack([(gold & ~pred).sum(0).cpu().numpy(), (pred & ~gold).sum(0).cpu().numpy()])
        else:
            outputs = z.reshape(-1, 1)
            loss = (outputs[:, 0] - labels.float()) ** 2
            good = loss.double()
        b = self.bucket[index]
        np.add.at(self.buckets[0], b, 1)
        np.add.at(self.buckets[1], b, good.cpu().numpy())
        for i, value, out in zip(index.tolist(), loss.tolist(), outputs.cpu().numpy()):
            item = (value, i, out)
            if len(self.heap) < KEEP:
                heapq.heappush(self.heap, item)
            elif value > self.heap[0][0]:
                heapq.heapreplace(self.heap, item)

    # every part as one array of fixed size; the worst examples go in this process's slot, so summing the arrays of
    # all processes gathers every process's examples
    def state(self) -> np.ndarray:
        worst = np.zeros((self.world, KEEP, 3 + self.width))  # filled, loss, index, outputs
        for j, (value, i, out) in enumerate(self.heap):
            worst[self.rank, j] = [1.0, value, i, *out]
        parts = [worst.ravel(), self.buckets.ravel(), self.labels.ravel()]
        if self.after is not None:
            parts += [self.after.state(), self.before.state()]
        return np.concatenate(parts)

    def load_state(self, total: np.ndarray) -> None:
        sizes = [self.world * KEEP * (3 + self.width), self.buckets.size, self.labels.size]
        worst, buckets, labels, rest = np.split(total, np.cumsum(sizes))
        self.buckets, self.labels = buckets.reshape(self.buckets.shape), labels.reshape(self.labels.shape)
        if self.after is not None:
            after, before = np.split(rest, 2)
            self.after.load_state(after), self.before.load_state(before)
        rows = worst.reshape(-1, 3 + self.width)
        rows = rows[rows[:, 0] > 0]
        self._gathered = sorted(((r[1], int(r[2]), r[3:]) for r in rows), key=lambda x: -x[0])[:KEEP]

    # ---------------------------------------------------------------- what the run directory gets

    def worst(self) -> list[tuple[float, int, np.ndarray]]:
        """(loss, test index, outputs) of the highest-loss examples, worst first."""
        if self._gathered is None:
            self.load_state(self.state())
        return self._gathered

    def by_length(self) -> list[dict]:
        key = "mse" if self.task == "regression" else "exact_match" if self.task == "multilabel" else "accuracy"
        n, good = self.buckets
        return [{"tokens": name, "n": int(n[i]), key: float(good[i] / n[i])}
                for i, name in enumerate(bucket_names()) if n[i]]  # fmt: skip

    def calibration(self) -> dict:
        strip = lambda d: {k: v for k, v in d.items() if k != "bins"}  # noqa: E731
        before, after = self.before.compute(), self.after.compute()
        return {"before": strip(before), "after": strip(after), "bins": {"before": before["bins"],
                                                                         "after": after["bins"]}}  # fmt: skip


def described(analysis: ErrorAnalysis, records: list[dict]) -> list[dict]:
    """The worst examples as rows of errors.csv: text, label, prediction, probability, loss."""
    names, task, out = analysis.names, analysis.task, []
    for loss, i, outputs in analysis.worst():
        r = records[i]
        row = {"line": r.get("line"), "text": r["text"]}
        if "text_pair" in r:
            row["text_pair"] = r["text_pair"]
        if task == "classification":
            k = int(np.argmax(outputs))
            row |= {"label": r["label"], "prediction": names[k], "probability": round(float(outputs[k]), 4)}
        elif task == "multilabel":
            chosen = [j for j, p in enumerate(outputs) if p > analysis.threshold]
            row |= {"label": "|".join(map(str, r["label"])), "prediction": "|".join(names[j] for j in chosen),
                    "probability": "|".join(f"{names[j]}:{outputs[j]:.4f}" for j in chosen)}  # fmt: skip
        else:
            row |= {"label": r["label"], "prediction": round(float(outputs[0]), 4), "probability": ""}
        out.append(row | {"loss": round(float(loss), 4)})
    return out


def write(run_path: Path, analysis: ErrorAnalysis, records: list[dict], test: dict) -> None:
    """errors.csv and confusions.md in the run directory."""
    rows = described(analysis, records)
    write_csv(run_path / "errors.csv", rows, ["line", "text", "label", "prediction", "probability", "loss"])
    (run_path / "confusions.md").write_text(confusions(analysis, rows, test), encoding="utf-8")


def confusions(analysis: ErrorAnalysis, rows: list[dict], test: dict) -> str:
    task, names = analysis.task, analysis.names
    short = lambda t: (t if len(t) <= 100 else t[:97] + "...").replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = [f"# Where the model goes wrong (test split, {test.get('n', 0)} examples)", ""]
    if task == "classification":
        m = np.asarray(test["confusion_matrix"])
        pairs = sorted(((int(m[i, j]), i, j) for i in range(len(names)) for j in range(len(names))
                        if i != j and m[i, j]), reverse=True)[:10]  # fmt: skip
        lines += [
            "## Most-confused pairs",
            "",
            "| true | predicted | count | share of the true label |",
            "|---|---|---|---|",
        ]
        lines += [f"| {names[i]} | {names[j]} | {c} | {c / max(m[i].sum(), 1):.1%} |" for c, i, j in pairs]
        for c, i, j in pairs[:5]:
            seen = [r for r in rows if str(r["label"]) == str(names[i]) and r["prediction"] == names[j]][:3]
            if seen:
                lines += ["", f"**{names[i]} read as {names[j]}** (the most confident of the {c}):", ""]
                lines += [f'- line {r["line"]}: "{short(r["text"])}" (p={r["probability"]})' for r in seen]
    elif task == "multilabel":
        missed, spurious = analysis.labels
        for title, counts in (("Most-missed labels (true, not predicted)", missed),
                              ("Most-spurious labels (predicted, not true)", spurious)):  # fmt: skip
            order = [k for k in np.argsort(-counts, kind="stable") if counts[k]][:10]
            lines += [f"## {title}", "", "| label | examples |", "|---|---|"]
            lines += [f"| {names[k]} | {int(counts[k])} |" for k in order] + [""]
    else:
        lines += [
            "## Largest residuals",
            "",
            "| line | text | label | prediction | squared error |",
            "|---|---|---|---|---|",
        ]
        lines += [f"| {r['line']} | {short(r['text'])} | {r['label']} | {r['prediction']} | {r['loss']} |"
                  for r in rows[:20]]  # fmt: skip
    key = "mse" if task == "regression" else "exact_match" if task == "multilabel" else "accuracy"
    lines += ["", f"## {key} by length (tokens)", "", f"| tokens | examples | {key} |", "|---|---|---|"]
    lines += [f"| {b['tokens']} | {b['n']} | {b[key]:.4f} |" for b in analysis.by_length()]
    lines += ["", "The highest-loss examples are in errors.csv.", ""]
    return "\n".join(lines)
