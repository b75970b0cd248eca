"""augment: does EDA or AEDA help a fine-tuned encoder in the few-shot regime? Resumable: each finished (set, N,
seed, arm) is appended to benchmarks/out/augment/runs.jsonl at once, and the same command skips what is there.

    python benchmarks/augment.py                          # movie_reviews N=50, 200, 1000 and trec N=200; 3 seeds
    python benchmarks/augment.py --sets movie_reviews:50 trec:200 --seeds 3
    python benchmarks/augment.py --smoke --model DIR --sets trec:40 --seeds 1 --max-steps 4
    python benchmarks/augment.py --sets trec:200 --arms none paraphrase --out benchmarks/out/augment-question \\
        --prompt "Rewrite this question in other words. Do not answer it. Reply with the new question only: {text}"

Each run: the demo recipe (MiniLM, full fine-tuning, lr 1e-4) with data.few_shot N (N training examples, N more to
validate on, stratified, seeded by data.split_seed = the seed) and data.augment {method: ARM, copies: 4}. Arms: none;
none_steps (no augmentation, but the augmented arms' number of steps: epochs x 5); eda; aeda; paraphrase (the
built-in SmolLM2; also the share of paraphrases the arm without augmentation labels as their source, and ten
samples, in runs.jsonl). Epochs 10 for N <= 200, 5 above, the same for every augmented arm (5x the examples: 5x the
steps). Prints test accuracy and macro-F1 (mean ± sd over seeds) and the training seconds per arm; appends the
table to RESULTS.md (not with --smoke).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, cpu_line, machine, out_dir  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ARMS = ("none", "none_steps", "eda", "aeda", "paraphrase")
DEFAULT_SETS = ("movie_reviews:50", "movie_reviews:200", "movie_reviews:1000", "trec:200")


def recipe(args, dataset: str, n: int, seed: int, arm: str, out: Path) -> dict:
    import yaml

    raw = yaml.safe_load((ROOT / "recipes" / "classify_movie_reviews.yaml").read_text())
    method = "none" if arm == "none_steps" else arm
    raw["data"].update(dataset=dataset, few_shot=n, split_seed=seed, augment={"method": method, "copies": 4})
    epochs = 10 if n <= 200 else 5
    # none_steps: no augmentation, but as many optimizer steps as an augmented arm (5x the examples per epoch), so a
    # gain of augmentation is not just a gain of training longer
    raw["train"].update(epochs=epochs * 5 if arm == "none_steps" else epochs, seed=seed, output_dir=str(out))
    raw["eval"].update(metric="f1_macro", patience=None)
    if args.model:
        raw["model"]["name"] = args.model
    if args.max_steps:
        raw["train"]["max_steps"] = args.max_steps
    if args.prompt and arm == "paraphrase":
        raw["data"]["augment"]["paraphrase"] = {"prompt": args.prompt}
    return raw


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", nargs="+", default=list(DEFAULT_SETS), help="DATASET:N ...")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    p.add_argument("--model", default=None, help="another encoder (the smoke test's tiny one)")
    p.add_argument("--max-steps", type=int, default=None, help="cap every run's steps (smoke)")
    p.add_argument("--prompt", default=None, help="the paraphrase arm's instruction ({text}: the text)")
    p.add_argument("--smoke", action="store_true", help="never writes RESULTS.md")
    p.add_argument("--out", type=Path, default=None, help="where runs.jsonl goes (default benchmarks/out/augment)")
    args = p.parse_args()

    import tunelab

    out = out_dir(args, "augment")
    log = out / "runs.jsonl"
    done = {(r["set"], r["n"], r["seed"], r["arm"]) for r in _read(log)}
    with tempfile.TemporaryDirectory() as tmp:
        for item in args.sets:
            dataset, n = item.split(":")[0], int(item.split(":")[1])
            for seed in range(args.seeds):
                for arm in args.arms:
                    if (dataset, n, seed, arm) in done:
                        continue
                    t0 = time.perf_counter()
                    run = tunelab.train(
                        recipe(args, dataset, n, seed, arm, Path(tmp) / f"{dataset}-{n}-{seed}-{arm}"),
                        show_progress=False,
                    )
                    row = {
                        "set": dataset,
                        "n": n,
                        "seed": seed,
                        "arm": arm,
                        "seconds": round(time.perf_counter() - t0, 1),
                        "train_seconds": run.info.get("train_seconds"),
                        "steps": run.info.get("steps"),
                        "augmented": run.info["data"].get("augmented"),
                        "test_n": run.metrics["test"]["n"],
                        **{k: run.metrics["test"][k] for k in ("accuracy", "f1_macro")},
                    }
                    if arm == "paraphrase":
                        row |= label_preservation(run, Path(tmp) / f"{dataset}-{n}-{seed}-none")
                    with open(log, "a", encoding="utf-8") as f:
                        f.write(json.dumps(row) + "\n")
                    print(json.dumps(row), flush=True)
    rows = _read(log)
    lines = table(rows)
    print(f"CPU: {cpu_line(machine())}")
    print("\n".join(lines))
    if not args.smoke:
        date = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        with open(RESULTS, "a", encoding="utf-8") as f:
            f.write(
                f"\n### augment — {date} — {cpu_line(machine())}\n\n`{' '.join(sys.argv[1:]) or '(defaults)'}`; "
                "demo recipe, data.few_shot N, augment copies 4\n\n" + "\n".join(lines) + "\n"
            )


def label_preservation(run, plain_dir: Path) -> dict:
    """How often the run without augmentation gives a paraphrase its source's label, and ten samples (the
    paraphrases come from the cache the run filled)."""
    from tunelab.augment.paraphrase import paraphrases
    from tunelab.config import load_run_config
    from tunelab.tasks.classify.data import read_records

    cfg = load_run_config(run.dir / "config.yaml")
    train = read_records(cfg).train
    written = paraphrases([r["text"] for r in train], cfg.data.augment.paraphrase, cfg.data.augment.copies,
                          cfg.data.split_seed)  # fmt: skip
    pairs = [(r, p) for r, ps in zip(train, written) for p in ps]
    out = {"samples": [{"text": r["text"], "paraphrase": p, "label": r["label"]} for r, p in pairs[:10]]}
    if (plain_dir / "model").is_dir():
        import tunelab

        predicted = tunelab.load(plain_dir).predict([p for _, p in pairs])
        same = [float(x["label"] == r["label"]) for (r, _), x in zip(pairs, predicted)]
        out["label_preserved"] = statistics.fmean(same)
    return out


def table(rows: list[dict]) -> list[str]:
    ms = lambda v: f"{statistics.fmean(v):.4f} ± {statistics.stdev(v) if len(v) > 1 else 0.0:.4f}"  # noqa: E731
    lines = [
        "| set | N | arm | seeds | test accuracy | test macro-F1 | train seconds | labels kept |",
        "|---|---|---|---|---|---|---|---|",
    ]
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["set"], r["n"], r["arm"]), []).append(r)
    for (dataset, n, arm), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], ARMS.index(kv[0][2]))):
        seconds = statistics.fmean(r["train_seconds"] or r["seconds"] for r in rs)
        kept = [r["label_preserved"] for r in rs if "label_preserved" in r]
        lines.append(
            f"| {dataset} | {n} | {arm} | {len(rs)} | {ms([r['accuracy'] for r in rs])} | "
            f"{ms([r['f1_macro'] for r in rs])} | {seconds:.1f} | {f'{statistics.fmean(kept):.2f}' if kept else '-'} |"
        )
    return lines


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


if __name__ == "__main__":
    main()
