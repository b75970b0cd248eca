"""ensemble: what a K-fold ensemble buys over a single run of the same recipe, what it costs, and how optimistic a
single validation split is.

    python benchmarks/ensemble.py          # TREC and movie_reviews (first 4,000), frozen recipe, 5 folds, 3 seeds
    python benchmarks/ensemble.py --smoke --model DIR --limit 96 --max-steps 4 --seeds 1 --folds 2 --datasets trec

One invocation, in one process, in a scratch directory; for each data set and each seed (train.seed 0, 1, 2; the
splits stay fixed, so every arm is tested on the same test examples):
  single    `tunelab train` of recipes/classify_trec_frozen.yaml (the data set swapped in)
  cv        the same recipe with `--folds K`: K fold runs, oof.jsonl
  ensemble  `tunelab ensemble --from-folds` with --method mean, weighted and vote, scored on the same test split
Prints test accuracy and macro-F1 (mean ± sd over the seeds), the training seconds of each arm, and the out-of-fold
accuracy next to the single run's validation accuracy; appends a row to RESULTS.md (not with --smoke).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, cpu_line, out_dir, run_info  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "classify_trec_frozen.yaml"
DATASETS = {"trec": {"dataset": "trec"}, "movie_reviews": {"dataset": "movie_reviews", "limit": 4000}}
METHODS = ("mean", "weighted", "vote")


def recipe(args, dataset: str, seed: int, out: Path, folds=None) -> dict:
    import yaml

    raw = yaml.safe_load(RECIPE.read_text())
    raw["data"].update(DATASETS[dataset])
    if args.limit:
        raw["data"]["limit"] = args.limit
    if args.model:
        raw["model"]["name"] = args.model
    raw["train"].update({"seed": seed, "output_dir": str(out), "folds": folds})
    if args.max_steps:
        raw["train"]["max_steps"] = args.max_steps
    return raw


def one_seed(args, dataset: str, seed: int, tmp: Path) -> dict:
    import tunelab

    t0 = time.perf_counter()
    single = tunelab.train(recipe(args, dataset, seed, tmp / f"{dataset}-{seed}-single"), show_progress=False)
    row = {"seed": seed, "single_seconds": round(time.perf_counter() - t0, 1),
           "precision": single.info["preprocessing"]["precision"],
           "single": {k: single.metrics["test"][k] for k in ("accuracy", "f1_macro")},
           "single_validation_accuracy": single.metrics["validation"]["accuracy"]}  # fmt: skip
    t0 = time.perf_counter()
    cv = tunelab.train(recipe(args, dataset, seed, tmp / f"{dataset}-{seed}-cv", args.folds), show_progress=False)
    row["cv_seconds"] = round(time.perf_counter() - t0, 1)
    row["oof_accuracy"] = cv.metrics["oof"]["accuracy"]
    folds = cv.metrics["folds"]
    row["fold_test"] = {k: statistics.fmean(f["test"][k] for f in folds) for k in ("accuracy", "f1_macro")}
    for method in METHODS:
        ens = tunelab.ensemble(from_folds=cv.dir, out=tmp / f"{dataset}-{seed}-{method}", method=method)
        assert ens.metrics["n"] == single.metrics["test"]["n"]  # the same test examples as the single run
        row[method] = {k: ens.metrics["ensemble"][k] for k in ("accuracy", "f1_macro")}
    print(f"{dataset} seed {seed}: single {row['single']}, ensemble (mean) {row['mean']}, "
          f"{row['single_seconds']} s vs {row['cv_seconds']} s; oof accuracy {row['oof_accuracy']:.4f} vs single "
          f"validation {row['single_validation_accuracy']:.4f}", flush=True)  # fmt: skip
    return row


def summarise(rows: list[dict]) -> dict:
    def ms(values):
        values = list(values)
        return [statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0]

    out = {arm: {k: ms(r[arm][k] for r in rows) for k in ("accuracy", "f1_macro")}
           for arm in ("single", "fold_test", *METHODS)}  # fmt: skip
    for k in ("single_seconds", "cv_seconds", "oof_accuracy", "single_validation_accuracy"):
        out[k] = ms(r[k] for r in rows)
    out["time_ratio"] = out["cv_seconds"][0] / out["single_seconds"][0]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--model", default=None, help="another encoder (the smoke test's tiny one)")
    p.add_argument("--limit", type=int, default=None, help="train on the first N examples only (smoke)")
    p.add_argument("--max-steps", type=int, default=None, help="cap every run's steps (smoke)")
    p.add_argument("--smoke", action="store_true", help="never writes RESULTS.md")
    p.add_argument("--out", type=Path, default=None, help="where results.json goes (default benchmarks/out/ensemble)")
    p.add_argument("--note", default="")
    args = p.parse_args()

    info = run_info("ensemble", args, folds=args.folds, datasets={})
    out = out_dir(args, "ensemble")
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            rows = [one_seed(args, dataset, seed, Path(tmp)) for seed in range(args.seeds)]
            info["datasets"][dataset] = {"rows": rows, "summary": summarise(rows)}
            (out / "results.json").write_text(json.dumps(info, indent=2, default=str))  # kept as each set finishes

    print(f"CPU: {cpu_line(info['machine'])}")
    for dataset, d in info["datasets"].items():
        for line in table(dataset, d["summary"], args.folds):
            print(line)
    if not args.smoke:
        append_results(info)


def table(dataset: str, s: dict, k: int) -> list[str]:
    f = lambda v: f"{v[0]:.4f} ± {v[1]:.4f}"  # noqa: E731
    lines = [
        f"{dataset}: test accuracy / macro-F1 (mean ± sd over seeds), training seconds",
        "| arm | test accuracy | test macro-F1 | seconds |",
        "|---|---|---|---|",
        f"| single run | {f(s['single']['accuracy'])} | {f(s['single']['f1_macro'])} | {s['single_seconds'][0]:.0f} |",
        f"| one fold model (mean of {k}) | {f(s['fold_test']['accuracy'])} | {f(s['fold_test']['f1_macro'])} | - |",
    ]
    for m in METHODS:
        seconds = f"{s['cv_seconds'][0]:.0f} (x{s['time_ratio']:.2f})" if m == "mean" else "same folds"
        lines.append(f"| {k}-fold ensemble, {m} | {f(s[m]['accuracy'])} | {f(s[m]['f1_macro'])} | {seconds} |")
    lines.append(f"\nout-of-fold accuracy {f(s['oof_accuracy'])} vs the single run's validation accuracy "
                 f"{f(s['single_validation_accuracy'])}")  # fmt: skip
    return lines


def append_results(info: dict) -> None:
    m = info["machine"]
    lines = [f"\n### ensemble — {info['date']} — {cpu_line(m)}, torch {m['torch']}, {m['threads']} threads, load avg "
             f"{m['load_avg_at_start']:.1f} at start{' — ' + info['note'] if info['note'] else ''}\n",
             f"`{' '.join(info['argv']) or '(defaults)'}`; recipes/classify_trec_frozen.yaml with each data set "
             f"swapped in (movie_reviews: first 4,000 training examples), {info['folds']} folds, precision auto: "
             f"{next(iter(info['datasets'].values()))['rows'][0]['precision']}\n"]  # fmt: skip
    for dataset, d in info["datasets"].items():
        lines += table(dataset, d["summary"], info["folds"]) + [""]
    with open(RESULTS, "a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
