"""insight: what the calibration does to the shipped classification recipes' test probabilities, and how many planted
label flips `tunelab doctor --labels` finds on a K-fold run.

    python benchmarks/insight.py                       # the three classification recipes; TREC with 5% flipped, 5 folds
    python benchmarks/insight.py --only labels
    python benchmarks/insight.py --smoke --model DIR --limit 96 --max-steps 4 --folds 2

One invocation, in a scratch directory:
  calibration  each recipe trained as shipped (recipes/classify_movie_reviews.yaml = the demo, classify_trec_frozen,
               classify_sms_spam_lora): metrics.json's calibration — T, and the test NLL, ECE (15 bins) and Brier score
               before and after — and the test accuracy (the argmax does not change)
  labels       the built-in TREC training + validation examples written to a CSV with FLIP (5%) of the labels changed
               to another label at seeded rows, the test split as it is; recipes/classify_trec_frozen.yaml with
               --folds K on it; doctor --labels on the run. Precision and recall of the top-k suspects (k = the number
               flipped) against the flipped rows, and of everything cleanlab flags
Prints the tables; appends them to RESULTS.md (not with --smoke).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, cpu_line, out_dir, run_info  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ("classify_movie_reviews", "classify_trec_frozen", "classify_sms_spam_lora")
FLIP = 0.05


def shipped(args, name: str, out: Path, **data) -> dict:
    import yaml

    raw = yaml.safe_load((ROOT / "recipes" / f"{name}.yaml").read_text())
    raw["data"].update(data)
    raw["train"]["output_dir"] = str(out)
    if args.model:
        raw["model"]["name"] = args.model
    if args.limit and "train" not in data:
        raw["data"]["limit"] = args.limit
    if args.max_steps:
        raw["train"]["max_steps"] = args.max_steps
    return raw


def calibration(args, tmp: Path) -> list[dict]:
    import tunelab

    rows = []
    for name in args.recipes:
        t0 = time.perf_counter()
        run = tunelab.train(shipped(args, name, tmp / name), show_progress=False)
        cal = run.metrics["calibration"]
        row = {"recipe": name, "seconds": round(time.perf_counter() - t0, 1), "applied": cal["applied"],
               "accuracy": run.metrics["test"]["accuracy"], "test_n": run.metrics["test"]["n"],
               "precision": run.info["preprocessing"]["precision"]}  # fmt: skip
        if cal["applied"]:
            row |= {"temperature": cal["temperature"], "before": cal["test"]["before"], "after": cal["test"]["after"]}
        else:
            row["why"] = cal["why"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def flipped_trec(args, tmp: Path) -> tuple[Path, Path, set[int], int]:
    """train+validation of the built-in TREC with FLIP of the labels changed (their CSV lines), and its test split."""
    from tunelab.config import load_config
    from tunelab.tasks.classify.data import read_records

    cfg = load_config(shipped(args, "classify_trec_frozen", tmp / "unused"))
    splits = read_records(cfg)
    pool = splits.train + splits.validation
    names = sorted({r["label"] for r in pool})
    rng = random.Random(0)
    flipped = set(rng.sample(range(len(pool)), round(FLIP * len(pool))))
    path, test = tmp / "trec_flipped.csv", tmp / "trec_test.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i, r in enumerate(pool):
            label = rng.choice([n for n in names if n != r["label"]]) if i in flipped else r["label"]
            w.writerow([r["text"], label])
    with open(test, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows([r["text"], r["label"]] for r in splits.test)
    return path, test, {i + 2 for i in flipped}, len(pool)  # CSV line = row + 2 (the header is line 1)


def labels(args, tmp: Path) -> dict:
    import tunelab
    from tunelab.doctor.labels import label_issues

    data, test, planted, n = flipped_trec(args, tmp)
    t0 = time.perf_counter()
    raw = shipped(args, "classify_trec_frozen", tmp / "cv", train=str(data), test=str(test), dataset=None,
                  validation_fraction=0.1, test_fraction=0.0)  # fmt: skip
    raw["train"]["folds"] = args.folds
    cv = tunelab.train(raw, show_progress=False)
    seconds = time.perf_counter() - t0
    found = label_issues(cv.dir, tmp / "labels")
    rows = list(csv.DictReader(open(tmp / "labels" / "label_issues.csv", encoding="utf-8")))
    lines = [int(r["line"]) for r in rows]
    k = len(planted)
    top = set(lines[:k])
    hit_top, hit_all = len(top & planted), len(set(lines) & planted)
    out = {"examples": n, "flipped": k, "folds": args.folds, "cv_seconds": round(seconds, 1), "flagged": len(lines),
           "top_k_precision": hit_top / max(len(top), 1), "top_k_recall": hit_top / k,
           "flagged_precision": hit_all / max(len(lines), 1), "flagged_recall": hit_all / k,
           "oof_accuracy": cv.metrics["oof"].get("accuracy"), "samples": found["top"][:5]}  # fmt: skip
    print(json.dumps({k: v for k, v in out.items() if k != "samples"}), flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=("calibration", "labels"), default=None)
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=RECIPES)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--model", default=None, help="another encoder (the smoke test's tiny one)")
    p.add_argument("--limit", type=int, default=None, help="train on the first N examples only (smoke)")
    p.add_argument("--max-steps", type=int, default=None, help="cap every run's steps (smoke)")
    p.add_argument("--smoke", action="store_true", help="never writes RESULTS.md")
    p.add_argument("--out", type=Path, default=None, help="where results.json goes (default benchmarks/out/insight)")
    p.add_argument("--note", default="")
    args = p.parse_args()

    info = run_info("insight", args)
    out = out_dir(args, "insight")
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "calibration"):
            info["calibration"] = calibration(args, Path(tmp))
            (out / "results.json").write_text(json.dumps(info, indent=2, default=str))
        if args.only in (None, "labels"):
            info["labels"] = labels(args, Path(tmp))
            (out / "results.json").write_text(json.dumps(info, indent=2, default=str))
    lines = table(info)
    print(f"CPU: {cpu_line(info['machine'])}")
    print("\n".join(lines))
    if not args.smoke:
        with open(RESULTS, "a", encoding="utf-8") as f:
            f.write(f"\n### insight — {info['date']} — {cpu_line(info['machine'])}\n\n"
                    f"`{' '.join(info['argv']) or '(defaults)'}`\n\n" + "\n".join(lines) + "\n")  # fmt: skip


def table(info: dict) -> list[str]:
    lines = []
    if info.get("calibration"):
        lines += ["| recipe | test n | accuracy | T | test NLL before -> after | ECE before -> after | Brier before -> "
                  "after |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in info["calibration"]:
            if not r["applied"]:
                lines.append(f"| {r['recipe']} | {r['test_n']} | {r['accuracy']:.4f} | not applied: {r['why']} |||")
                continue
            b, a = r["before"], r["after"]
            lines.append(f"| {r['recipe']} | {r['test_n']} | {r['accuracy']:.4f} | {r['temperature']:.3f} | "
                         f"{b['nll']:.4f} -> {a['nll']:.4f} | {b['ece']:.4f} -> {a['ece']:.4f} | "
                         f"{b['brier']:.4f} -> {a['brier']:.4f} |")  # fmt: skip
    if info.get("labels"):
        x = info["labels"]
        lines += ["", f"TREC, {x['flipped']} of {x['examples']} training labels flipped ({FLIP:.0%}), "
                  f"{x['folds']}-fold ({x['cv_seconds']:.0f} s; out-of-fold accuracy {x['oof_accuracy']:.4f}):", "",
                  "| suspects | precision | recall |", "|---|---|---|",
                  f"| top {x['flipped']} (k = flipped) | {x['top_k_precision']:.3f} | {x['top_k_recall']:.3f} |",
                  f"| all {x['flagged']} cleanlab flags | {x['flagged_precision']:.3f} | "
                  f"{x['flagged_recall']:.3f} |"]  # fmt: skip
    return lines


if __name__ == "__main__":
    main()
