"""What a cross-validation reports once its folds are done: the out-of-fold predictions (oof.jsonl), their pooled
metrics, the mean and sd of each fold's metrics per section (cv.json), and the model card."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from tunelab.config import Config
from tunelab.registry import TASKS
from tunelab.runs.checkpoint import write_atomic

SECTIONS = ("validation", "held_out", "test")  # the inner validation, the fold it never saw, the test split


def write_oof(path: Path, pool: list[dict], fold_of: list[int], oof: list, task: str) -> None:
    """One line per example of train + validation, predicted by the one fold model that never saw it: its value
    (a real-valued target) or its probability per label."""
    real_valued = TASKS[task].target == "real-valued"
    lines = []
    for i, (r, f, p) in enumerate(zip(pool, fold_of, oof)):
        row = {"index": i, "source": r.get("source"), "line": r.get("line"), "text": r["text"], "label": r["label"],
               "fold": f + 1}  # fmt: skip
        if "text_pair" in r:
            row["text_pair"] = r["text_pair"]
        row |= {"prediction": p["score"]} if real_valued else {"probs": p["scores"]}
        lines.append(json.dumps(row, ensure_ascii=False) + "\n")
    write_atomic(path, "".join(lines))


def mean_sd(folds: list[dict]) -> dict:
    """{"mean": {section: {metric: mean}}, "sd": ...} over the folds."""
    mean, sd = {}, {}
    for section in SECTIONS:
        names = sorted(set().union(*(f[section] for f in folds)))
        values = {n: [f[section][n] for f in folds if n in f[section]] for n in names}
        mean[section] = {n: statistics.fmean(v) for n, v in values.items()}
        sd[section] = {n: statistics.stdev(v) if len(v) > 1 else 0.0 for n, v in values.items()}
    return {"mean": mean, "sd": sd}


def oof_metrics(task: str, pool: list[dict], oof: list) -> dict:
    """Pooled over every out-of-fold prediction, by the family's kind of target: accuracy (single-label), mse
    (real-valued); the count alone otherwise."""
    target = TASKS[task].target
    if target == "single-label":
        hits = [max(p["scores"], key=p["scores"].get) == r["label"] for r, p in zip(pool, oof)]
        return {"accuracy": sum(hits) / len(hits), "n": len(hits)}
    if target == "real-valued":
        errors = [(p["score"] - float(r["label"])) ** 2 for r, p in zip(pool, oof)]
        return {"mse": sum(errors) / len(errors), "n": len(errors)}
    return {"n": len(oof)}


def card(cfg: Config, summary: dict) -> str:
    lines = [f"# {cfg.task}: {cfg.model.name}, {summary['k']}-fold cross-validation", "",
             "Each fold's run (folds/k) trained on the other folds, chose its checkpoint on a validation set carved "
             "from them, and was tested on its own fold (held_out) and on the test split.", "",
             "| metric | " + " | ".join(f"{s} mean ± sd" for s in SECTIONS) + " |",
             "|---|" + "---|" * len(SECTIONS)]  # fmt: skip
    names = sorted(set().union(*(summary["mean"][s] for s in SECTIONS)))
    for n in names:
        cells = [f"{summary['mean'][s][n]:.4f} ± {summary['sd'][s][n]:.4f}" if n in summary["mean"][s] else "—"
                 for s in SECTIONS]  # fmt: skip
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines += ["", f"Out-of-fold predictions (oof.jsonl), pooled: {json.dumps(summary['oof'])}", ""]
    return "\n".join(lines)
