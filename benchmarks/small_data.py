"""small_data: tunelab's defaults against the Hugging Face Trainer tutorial's settings on small sets (issue 35).
Resumable: each finished (set, size, seed, arm) is appended to benchmarks/out/small_data/runs.jsonl at once, and the
same command skips what is there.

    python benchmarks/small_data.py                                  # trec, sms_spam, movie_reviews x 500/1,500/5,000
    python benchmarks/small_data.py --sizes 500 1500 --seeds 1       # a reduced run
    python benchmarks/small_data.py --arms tunelab trainer tunelab_32   # also tunelab at its old fixed batch of 32
    python benchmarks/small_data.py --smoke --model DIR --sets trec --sizes 40 --seeds 1 --test 40

Per built-in set (deduplicated by text): a test set of --test (1,000) examples drawn once (seed 0), and from the rest a
training subset of each size (seed 42: the same examples for every seed and arm). Where fewer are left, all of them:
sms_spam (4,522 unique texts) and trec (5,381) train on 3,522 and 4,381 at size 5,000 (the row says so). Arms, each a
fresh child process, alternating:
  tunelab     tunelab.train with its defaults: the recipe names only the data, data.max_length and train.epochs (no
              validation or test split, so both arms train on the same examples; train.batch_size is what tunelab
              chooses from the data size, run.json's "chosen")
  trainer     transformers.Trainer with the tutorial's settings: batch 16, lr 5e-5, every other TrainingArguments
              default (no warm-up, no weight decay, linear decay, fp32, random order), DataCollatorWithPadding
  tunelab_32  (only with --arms) tunelab's defaults with train.batch_size 32, the fixed default before issue 35
Both: max length 128 (the same truncation), --epochs (1) epochs, seed = the repeat, test accuracy of the model at the
end of training (not timed). Timed: `loop s` from the first to the last optimizer step, `wall s` from the child's start
(imports included) to the end of training. Prints and appends to RESULTS.md (not with --smoke) a row per set, size and
arm: accuracy mean ± sd over seeds, steps, batch, median loop and wall seconds; and per set and size the accuracy
difference tunelab - trainer and the wall-time speed-up trainer / tunelab.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STARTED = time.perf_counter()  # a child's wall time counts from here: its imports are part of what a user waits for

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, cpu_line, loop_timer, machine, out_dir, train_tunelab, versions  # noqa: E402

SETS = ("trec", "sms_spam", "movie_reviews")
SIZES = (500, 1500, 5000)
ARMS = ("tunelab", "trainer", "tunelab_32")
MAX_LENGTH, TUTORIAL_BATCH, TUTORIAL_LR = 128, 16, 5e-5


def examples(dataset: str, size: int, test: int) -> tuple[list[dict], list[dict]]:
    """(train, test) records {text, label} of a built-in set: duplicates dropped, `test` held out (seed 0), then
    `size` training examples from the rest (seed 42), or all of the rest where fewer are left."""
    from tunelab.data.builtin import load_builtin

    records, seen = [], set()
    for r in load_builtin(dataset)[0]:
        if r["text"] not in seen:
            seen.add(r["text"])
            records.append({"text": r["text"], "label": r["label"]})
    random.Random(0).shuffle(records)
    held, rest = records[:test], records[test:]
    random.Random(42).shuffle(rest)
    return rest[:size], held


def write_csv(path: Path, records: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows([r["text"], r["label"]] for r in records)
    return path


# ------------------------------------------------------------------ arms (each in a child process)


def arm_tunelab(args, batch: int | None = None) -> dict:
    import tunelab

    train, test = examples(args.dataset, args.size, args.test)
    work = Path(tempfile.mkdtemp(prefix="bench-small-"))
    recipe = {
        "task": "classification",
        "data": {"train": str(write_csv(work / "train.csv", train)), "max_length": MAX_LENGTH,
                 "validation_fraction": 0.0, "test_fraction": 0.0},
        "train": {"epochs": args.epochs, "seed": args.seed, "output_dir": str(work / "run"),
                  **({"batch_size": batch} if batch else {})},
    }  # fmt: skip
    if args.model:
        recipe["model"] = {"name": args.model}
    run, marks = train_tunelab(recipe)
    trained = time.perf_counter()
    accuracy = tunelab.evaluate(run.dir, write_csv(work / "test.csv", test))["accuracy"]
    info = run.info
    return {"train": len(train), "test": len(test), "accuracy": accuracy, "steps": info["steps"],
            "batch": info.get("chosen", {}).get("train.batch_size", {}).get("value", batch),
            "precision": info["preprocessing"]["precision"], "loop_s": marks["steps"][-1] - marks["start"],
            "wall_s": trained - STARTED, "recipe": recipe}  # fmt: skip


def arm_tunelab_32(args) -> dict:
    return arm_tunelab(args, batch=32)


def arm_trainer(args) -> dict:
    import datasets
    import numpy as np
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    from tunelab.config import ModelConfig
    from tunelab.models.load import resolve

    datasets.disable_progress_bars()
    train, test = examples(args.dataset, args.size, args.test)
    location = resolve(ModelConfig(name=args.model or "minilm")).location
    names = sorted({r["label"] for r in train + test})
    label2id = {n: i for i, n in enumerate(names)}
    tok = AutoTokenizer.from_pretrained(location)

    def encode(records):
        enc = tok([r["text"] for r in records], truncation=True, max_length=MAX_LENGTH)
        return datasets.Dataset.from_dict({**enc, "labels": [label2id[r["label"]] for r in records]})

    train_ds, test_ds = encode(train), encode(test)
    model = AutoModelForSequenceClassification.from_pretrained(
        location, num_labels=len(names), id2label=dict(enumerate(names)), label2id=label2id
    )
    work = tempfile.mkdtemp(prefix="bench-small-trainer-")
    # the tutorial's settings; everything else is TrainingArguments' default (no warm-up, no weight decay, fp32)
    targs = dict(output_dir=work, per_device_train_batch_size=TUTORIAL_BATCH, learning_rate=TUTORIAL_LR,
                 num_train_epochs=args.epochs, seed=args.seed, save_strategy="no", eval_strategy="no",
                 report_to="none", use_cpu=True, disable_tqdm=True, per_device_eval_batch_size=128)  # fmt: skip
    marks: dict = {}
    trainer = Trainer(model=model, args=TrainingArguments(**targs), train_dataset=train_ds,
                      data_collator=DataCollatorWithPadding(tok), callbacks=[loop_timer(marks)])  # fmt: skip
    trainer.train()
    trained = time.perf_counter()
    predictions = trainer.predict(test_ds)
    accuracy = float((np.argmax(predictions.predictions, -1) == predictions.label_ids).mean())
    return {"train": len(train), "test": len(test), "accuracy": accuracy, "steps": trainer.state.global_step,
            "batch": TUTORIAL_BATCH, "precision": "fp32", "loop_s": marks["end"] - marks["start"],
            "wall_s": trained - STARTED, "trainer_args": targs}  # fmt: skip


ARM_FUNCTIONS = {"tunelab": arm_tunelab, "trainer": arm_trainer, "tunelab_32": arm_tunelab_32}


# ------------------------------------------------------------------ the parent: runs, table, RESULTS.md


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    p.add_argument("--sizes", nargs="+", type=int, default=list(SIZES), help="training examples per run")
    p.add_argument("--seeds", type=int, default=3, help="repeats per set, size and arm; repeat i uses seed i")
    p.add_argument("--arms", nargs="+", default=["tunelab", "trainer"], choices=ARMS)
    p.add_argument("--epochs", type=float, default=1.0, help="the same for every arm")
    p.add_argument("--test", type=int, default=1000, help="held-out test examples per set")
    p.add_argument("--model", default=None, help="another encoder (the smoke test's tiny one); default MiniLM-L6")
    p.add_argument("--note", default="", help="free text stored with the rows (e.g. 'busy machine')")
    p.add_argument("--smoke", action="store_true", help="never writes RESULTS.md")
    p.add_argument("--out", type=Path, default=None, help="where runs.jsonl goes (default benchmarks/out/small_data)")
    p.add_argument("--child", choices=ARMS, help=argparse.SUPPRESS)
    p.add_argument("--dataset", help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        import torch

        torch.manual_seed(args.seed)
        args.result.write_text(json.dumps(ARM_FUNCTIONS[args.child](args), default=str))
        return

    out = out_dir(args, "small_data")
    log = out / "runs.jsonl"
    done = {(r["set"], r["size"], r["seed"], r["arm"]) for r in _read(log)}
    for dataset in args.sets:
        for size in args.sizes:
            for seed in range(args.seeds):
                for arm in args.arms:  # alternating, so a slow spell of a shared machine hits both arms
                    if (dataset, size, seed, arm) in done:
                        continue
                    result = out / f"{dataset}-{size}-{seed}-{arm}.json"
                    common = ["--epochs", str(args.epochs), "--test", str(args.test)]
                    cmd = [sys.executable, __file__, "--child", arm, "--dataset", dataset, "--size", str(size),
                           "--seed", str(seed), "--result", str(result), *common,
                           *(["--model", args.model] if args.model else [])]  # fmt: skip
                    proc = subprocess.run(cmd, capture_output=True, text=True)
                    if proc.returncode != 0 or not result.exists():
                        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
                        raise SystemExit(f"{arm} on {dataset} {size} seed {seed} failed ({proc.returncode})")
                    row = {"set": dataset, "size": size, "seed": seed, "arm": arm, "epochs": args.epochs,
                           **json.loads(result.read_text())}  # fmt: skip
                    with open(log, "a", encoding="utf-8") as f:
                        f.write(json.dumps(row, default=str) + "\n")
                    print(f"  {dataset} {size} seed {seed} {arm}: accuracy {row['accuracy']:.4f}, {row['steps']} "
                          f"steps of {row['batch']}, loop {row['loop_s']:.1f} s, wall {row['wall_s']:.1f} s",
                          flush=True)  # fmt: skip
    rows = [r for r in _read(log) if r["set"] in args.sets and r["size"] in args.sizes and r["arm"] in args.arms]
    m = machine()
    lines = table(rows)
    print(f"CPU: {cpu_line(m)}, torch {m['torch']}, {m['threads']} threads, load avg {m['load_avg_at_start']:.1f}")
    print("\n".join(lines))
    if not args.smoke:
        date = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        v = ", ".join(f"{k} {x}" for k, x in versions().items())
        with open(RESULTS, "a", encoding="utf-8") as f:
            f.write(
                f"\n### small_data — {date} — {cpu_line(m)}, {m['threads']} threads, load avg "
                f"{m['load_avg_at_start']:.1f} at the end{' — ' + args.note if args.note else ''}\n\n"
                f"`{' '.join(sys.argv[1:]) or '(defaults)'}`; {v}; {args.epochs:g} epoch(s), max length {MAX_LENGTH}, "
                f"test {args.test} held-out examples per set\n\n" + "\n".join(lines) + "\n"
            )


def table(rows: list[dict]) -> list[str]:
    """A row per set, size and arm; then per set and size: tunelab - trainer accuracy and the wall-time speed-up."""
    ms = lambda v: f"{statistics.fmean(v):.4f} ± {statistics.stdev(v) if len(v) > 1 else 0.0:.4f}"  # noqa: E731
    med = lambda rs, k: statistics.median(r[k] for r in rs)  # noqa: E731
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["set"], r["size"]), {}).setdefault(r["arm"], []).append(r)
    lines = ["| set | size (trained) | arm | precision | seeds | steps | batch | test accuracy | loop s | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    summary = []
    for (dataset, size), arms in sorted(groups.items(), key=lambda kv: (SETS.index(kv[0][0]), kv[0][1])):
        for arm in [a for a in ARMS if a in arms]:
            rs = arms[arm]
            lines.append(f"| {dataset} | {size} ({rs[0]['train']}) | {arm} | {rs[0]['precision']} | {len(rs)} | "
                         f"{rs[0]['steps']} | {rs[0]['batch']} | {ms([r['accuracy'] for r in rs])} | "
                         f"{med(rs, 'loop_s'):.1f} | {med(rs, 'wall_s'):.1f} |")  # fmt: skip
        if "tunelab" in arms and "trainer" in arms:
            t, b = arms["tunelab"], arms["trainer"]
            delta = statistics.fmean(r["accuracy"] for r in t) - statistics.fmean(r["accuracy"] for r in b)
            summary.append(f"- {dataset} {size}: tunelab - trainer accuracy {delta * 100:+.2f} points; wall time "
                           f"x{med(b, 'wall_s') / med(t, 'wall_s'):.2f} faster (loop x"
                           f"{med(b, 'loop_s') / med(t, 'loop_s'):.2f})")  # fmt: skip
    return lines + ([""] + summary if summary else [])


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


if __name__ == "__main__":
    main()
