"""doctor: `tunelab doctor` on a 100,000-row data set (the issue's bound: under 30 s without --estimate), and whether
it finds what was planted.

    python benchmarks/doctor.py                     # 100,000 rows: train 80k / validation 10k / test 10k
    python benchmarks/doctor.py --smoke --rows 2000 --model DIR

The rows are sentences of 5 to 40 words drawn from the built-in corpora's vocabulary (movie reviews, SMS, TREC), with
planted: exact copies of training rows in test (leakage), near-copies (one word of a long row changed), and texts
given two labels (conflicts). One invocation, one process; appends a row to RESULTS.md (not with --smoke).
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


def make_data(root: Path, rows: int, seed: int = 0) -> dict:
    from tunelab.data.builtin import load_builtin

    rng = random.Random(seed)
    words = sorted(
        {w for name in ("movie_reviews", "sms_spam", "trec") for r in load_builtin(name)[0] for w in r["text"].split()}
    )
    sentence = lambda: " ".join(rng.choice(words) for _ in range(rng.randint(5, 40)))  # noqa: E731
    n_val = n_test = rows // 10
    train = [[sentence(), rng.choice("ab")] for _ in range(rows - n_val - n_test)]
    validation = [[sentence(), rng.choice("ab")] for _ in range(n_val)]
    test = [[sentence(), rng.choice("ab")] for _ in range(n_test)]
    k = max(1, rows // 200)  # planted, on disjoint rows: k exact leaks, k near-copies, k conflicts
    long_rows = [i for i, (t, _) in enumerate(train) if len(t.split()) >= 30 and i >= 3 * k][:k]
    for j in range(k):
        test[j] = list(train[j])  # an exact copy of a training row
        words_of = train[long_rows[j]][0].split()
        words_of[len(words_of) // 2] = "zzyzx"
        test[k + j] = [" ".join(words_of), train[long_rows[j]][1]]  # a training row with one word changed
        text, label = train[k + j]
        train[2 * k + j] = [text, "b" if label == "a" else "a"]  # the same text, the other label
    for name, part in (("train", train), ("validation", validation), ("test", test)):
        with open(root / f"{name}.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            w.writerows(part)
    return {"rows": rows, "planted": k}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--model", default=None, help="another tokenizer (the smoke test's tiny model)")
    p.add_argument("--smoke", action="store_true", help="never writes RESULTS.md")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--note", default="")
    args = p.parse_args()

    from tunelab.config import load_config
    from tunelab.doctor import doctor

    info = run_info("doctor", args)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        info |= make_data(root, args.rows)
        cfg = load_config(
            {
                "task": "classification",
                "model": {"name": args.model or "minilm"},
                "data": {
                    "train": str(root / "train.csv"),
                    "validation": str(root / "validation.csv"),
                    "test": str(root / "test.csv"),
                    "max_length": 64,
                },
            }
        )
        t0 = time.perf_counter()
        report = doctor(cfg, root / "report", show_progress=False)
        info["seconds"] = round(time.perf_counter() - t0, 2)
    found: dict = {}
    for f in report.findings:  # (the exact leaks are a warning: data.dedupe drops them from the run's training)
        found[f.check] = found.get(f.check, 0) + len(f.rows)
    conflicts = next((f.data["texts"] for f in report.findings if f.check == "conflicting_labels"), 0)
    info["found"] = {
        "leakage": found.get("leakage", 0),
        "near_duplicates": found.get("near_duplicates", 0),
        "conflicting_texts": conflicts,
    }
    print(f"CPU: {cpu_line(info['machine'])}")
    print(
        f"{info['rows']} rows in {info['seconds']} s (bound: 30 s); planted {info['planted']} of each, found "
        f"{json.dumps(info['found'])}"
    )
    out = out_dir(args, "doctor")
    (out / "results.json").write_text(json.dumps(info, indent=2, default=str))
    if not args.smoke:
        m = info["machine"]
        with open(RESULTS, "a", encoding="utf-8") as f:
            f.write(
                f"\n### doctor — {info['date']} — {cpu_line(m)}, {m['threads']} threads, load avg "
                f"{m['load_avg_at_start']:.1f} at start{' — ' + info['note'] if info['note'] else ''}\n\n"
                f"`{' '.join(info['argv']) or '(defaults)'}`: {info['rows']} rows (80/10/10), MiniLM's tokenizer, "
                f"max_length 64: **{info['seconds']} s** (bound 30 s). Planted {info['planted']} exact leaks, "
                f"{info['planted']} near-copies, {info['planted']} conflicts; found {json.dumps(info['found'])}\n"
            )


if __name__ == "__main__":
    main()
