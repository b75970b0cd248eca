"""`tunelab doctor --labels RUN`: the examples whose label is probably wrong, by confident learning (Northcutt et al.,
JAIR 2021) — cleanlab's `find_label_issues`, ranked by self-confidence (the probability the model gives the label).

Confident learning needs probabilities from a model that never trained on the example:
  a cross-validation run (kind cv)   its oof.jsonl: every training + validation example predicted by the one fold
                                     model that held it out, so every training example is checked;
  a plain run                        only its validation and test examples (the training examples' probabilities are
                                     in-sample: the model has memorised their flips), and the report says so.

label_issues.csv: rank, file, line, text, given label, suggested label, confidence (the probability of the suggested
label), label quality (the probability of the given one; lowest first), and the fold or split it came from.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tunelab.data.predict_io import write_csv
from tunelab.errors import TunelabError
from tunelab.registry import TASKS, load_object
from tunelab.runs.rundir import RunDir

CLASS_TARGETS = ("single-label", "multi-label")  # targets with classes a label can be wrongly given (registry `target`)


def label_issues(run_dir: Path, out: Path) -> dict:
    """Rank the run's suspect labels into out/label_issues.csv; returns the summary (also out/label_issues.json)."""
    run = RunDir.open(run_dir)
    info = run.info
    task = info.get("task")
    family = TASKS.get(task)
    if family is None or family.target not in CLASS_TARGETS:
        able = " and ".join(t for t, f in TASKS.items() if f.target in CLASS_TARGETS)
        raise TunelabError(f"{run.path}: a {task} run. doctor --labels checks the labels of {able} runs (a "
                           "real-valued target, as regression's, has no 'wrong class' to find).")  # fmt: skip
    if info.get("kind") == "cv":
        rows, scope = _out_of_fold(run)
    else:
        rows, scope = _held_out(run)
    labels = info.get("labels") or RunDir(run.path / "folds" / "1").info.get("labels", {})  # cv: its folds' labels
    names = [labels[str(i)] for i in range(len(labels))]
    found = rank(rows, names, task)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "label_issues.csv", found, ["rank", "file", "line", "text", "given_label", "suggested_label",
                                                "confidence", "label_quality", "from"])  # fmt: skip
    summary = {"run": str(run.path), "task": task, "scope": scope, "examples": len(rows), "issues": len(found),
               "method": "cleanlab.filter.find_label_issues (prune_by_noise_rate), ranked by self_confidence",
               "top": found[:20], "csv": str(out / "label_issues.csv")}  # fmt: skip
    (out / "label_issues.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    return summary


def rank(rows: list[dict], names: list[str], task: str) -> list[dict]:
    """The rows cleanlab flags, lowest label quality first. Each row: text, label, probs {name: p}, and where it is.
    A family whose target is multi-label gives each row a set of labels."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    if not rows:
        return []
    multi_label = TASKS[task].target == "multi-label"
    index = {n: i for i, n in enumerate(names)}
    probs = np.array([[r["probs"][n] for n in names] for r in rows], dtype=np.float64)
    # n_jobs=1: cleanlab's default forks a pool of processes, and a fork of a process whose other threads run (torch's,
    # a progress bar's) can hang on a lock one of them held (seen in the tests); the results do not depend on n_jobs
    # (cleanlab's docs), and on a held-out split's few thousand rows a pool costs more than it saves
    if multi_label:
        given = [[index[str(x)] for x in r["label"]] for r in rows]
        flagged = find_label_issues(
            given, probs, multi_label=True, return_indices_ranked_by="self_confidence", n_jobs=1
        )
        quality = {int(i): float(np.mean([probs[i, k] if k in given[i] else 1 - probs[i, k]
                                          for k in range(len(names))])) for i in flagged}  # fmt: skip
    else:
        probs = probs / probs.sum(1, keepdims=True)  # softmax outputs, rounded: exactly rows of a distribution
        given = np.array([index[str(r["label"])] for r in rows])
        flagged = find_label_issues(given, probs, return_indices_ranked_by="self_confidence", n_jobs=1)
        scores = get_label_quality_scores(given, probs)
        quality = {int(i): float(scores[i]) for i in flagged}
    found = []
    for n, i in enumerate(flagged, 1):
        r, p = rows[int(i)], probs[int(i)]
        if multi_label:
            suggested = [names[k] for k in range(len(names)) if p[k] > 0.5]
            confidence = float(np.mean([max(x, 1 - x) for x in p]))
            label, suggestion = "|".join(map(str, r["label"])), "|".join(suggested)
        else:
            k = int(p.argmax())
            label, suggestion, confidence = str(r["label"]), names[k], float(p[k])
        found.append({"rank": n, "file": r.get("source"), "line": r.get("line"), "text": r["text"],
                      **({"text_pair": r["text_pair"]} if "text_pair" in r else {}), "given_label": label,
                      "suggested_label": suggestion, "confidence": round(confidence, 4),
                      "label_quality": round(quality[int(i)], 4), "from": r.get("from"),
                      "index": int(i)})  # fmt: skip
    return found


def _out_of_fold(run: RunDir) -> tuple[list[dict], str]:
    path = run / "oof.jsonl"
    if not path.exists():
        raise TunelabError(f"{run.path}: a cross-validation without oof.jsonl (not finished?). Run the same "
                           "`tunelab train ... --folds K` command again to finish it.")  # fmt: skip
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for r in rows:
        r["from"] = f"fold {r['fold']}"
    return rows, f"every training and validation example, out of fold ({len(rows)})"


def _held_out(run: RunDir) -> tuple[list[dict], str]:
    from tunelab.config import load_run_config
    from tunelab.predictors import load

    cfg = load_run_config(run / "config.yaml")
    splits = load_object(TASKS[cfg.task].examples)(cfg)  # the splits the run trained on, read as it read them
    records = [r | {"from": "validation"} for r in splits.validation] + [r | {"from": "test"} for r in splits.test]
    if not records:
        raise TunelabError(f"{run.path}: no validation or test examples to check. Training examples cannot be "
                           "checked with the model that learned them; run a cross-validation (--folds 5) and "
                           "give its run directory.")  # fmt: skip
    predictor = load(run.path)
    pairs = [r.get("text_pair", "") for r in records] if any("text_pair" in r for r in records) else None
    predictions = predictor.predict([r["text"] for r in records], pairs)
    rows = [r | {"probs": p["scores"]} for r, p in zip(records, predictions)]
    return rows, (f"validation and test examples only ({len(rows)}): a plain run's training examples were learned, "
                  "flips included; a cross-validation run (--folds K) checks every training example")  # fmt: skip
