"""ship: the demo model as shipped — `tunelab predict` on PyTorch vs onnxruntime fp32 vs int8, and a transformers
pipeline on the same model, one invocation.

    python benchmarks/ship.py                          # trains the demo for --steps, exports it twice, 10,000 texts
    python benchmarks/ship.py --run runs/demo          # an existing demo run instead of training one
    python benchmarks/ship.py --smoke --model DIR --texts 64 --steps 2     # what the tests run

The run: the demo recipe (MiniLM-L6 on the built-in movie-review snippets, fp32), trained for --steps (throughput does
not depend on how long it trained; accuracy is read on its own test split for every arm alike), exported with
`tunelab export --format onnx` and `--quantize int8` (the export measures its own parity; printed here).
Arms, in turn in this one process, each on the same N texts (the built-in snippets, all splits, cycled to N):
  torch      tunelab.load(RUN).predict(texts, batch_size=64): what `tunelab predict RUN --input FILE` runs
  onnx_fp32  the same on the fp32 export (tunelab.load(EXPORT): onnxruntime behind the same predictor)
  onnx_int8  the same on the int8 export
  pipeline   transformers.pipeline("text-classification", RUN/model) over the list, batch_size=1: the pipeline
             docs' advice for CPU ("if you are using CPU, don't batch"), truncation at the run's max length
Per arm: rows/s over the N texts (model loading not timed), batch-1 p50 latency (one text per call, --latency
calls: predict([text]); the pipeline: pipe(text)), file size (model.safetensors / model.onnx), test accuracy, and
agreement with the torch arm's labels.
Targets (issue 32): int8 >= 2x torch rows/s at <= 0.5 accuracy points lost; torch >= 2x the pipeline.
Appends its rows to benchmarks/RESULTS.md (not with --smoke).
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

BATCH = 64  # tunelab predict's default --batch-size


def train_demo(args, work: Path) -> Path:
    import tunelab
    from tunelab.config import DEMO_RECIPE

    overrides = {"model.name": args.model, "train.max_steps": args.steps, "train.precision": "fp32",
                 "train.output_dir": str(work / "demo")}  # fmt: skip
    return Path(tunelab.train(DEMO_RECIPE, overrides=overrides, show_progress=False).dir)


def texts_and_test(run: Path, n: int) -> tuple[list[str], list[dict]]:
    """N texts (every split's snippets, cycled) and the run's labelled test split."""
    from tunelab.config import load_run_config
    from tunelab.tasks.classify.data import read_records

    splits = read_records(load_run_config(run / "config.yaml"))
    pool = [r["text"] for r in splits.train + splits.validation + splits.test]
    return [pool[i % len(pool)] for i in range(n)], splits.test


def measure(name: str, predict, one, texts: list[str], test: list[dict], latency_calls: int, size: int) -> dict:
    """`predict(texts)` -> labels, timed over all texts; `one(text)`, timed per call (batch-1 latency)."""
    predict(texts[:BATCH])  # warm-up: first-call allocations, onnxruntime's kernel selection
    start = time.perf_counter()
    labels = predict(texts)
    seconds = time.perf_counter() - start
    times = []
    for text in texts[:latency_calls]:
        t = time.perf_counter()
        one(text)
        times.append(time.perf_counter() - t)
    test_labels = predict([r["text"] for r in test])
    accuracy = sum(p == r["label"] for p, r in zip(test_labels, test)) / max(len(test), 1)
    row = {"arm": name, "rows": len(texts), "seconds": seconds, "rows_per_s": len(texts) / seconds,
           "p50_ms": statistics.median(times) * 1000, "size_mb": size / 2**20, "accuracy": accuracy,
           "labels": labels}  # fmt: skip
    print(f"{name:10s} {row['rows_per_s']:8.1f} rows/s  p50 {row['p50_ms']:6.1f} ms  {row['size_mb']:6.1f} MB  "
          f"accuracy {accuracy:.4f}", flush=True)  # fmt: skip
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="A finished demo (classification) run; default: train one.")
    parser.add_argument("--model", default="minilm", help="Encoder of the run it trains.")
    parser.add_argument("--steps", type=int, default=150, help="Optimizer steps of the run it trains.")
    parser.add_argument("--texts", type=int, default=10_000, help="Texts per arm (rows/s).")
    parser.add_argument("--latency", type=int, default=200, help="Batch-1 calls per arm (p50 latency).")
    parser.add_argument("--smoke", action="store_true", help="Tiny numbers; never writes RESULTS.md.")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    if args.smoke:
        args.latency = min(args.latency, 8)
    import torch
    import transformers

    import tunelab

    info = run_info("ship", args, threads=torch.get_num_threads())
    out = out_dir(args, "ship")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        run = args.run or train_demo(args, work)
        exports = {q: tunelab.export(run, work / f"onnx-{q}", format="onnx", quantize=None if q == "fp32" else q)
                   for q in ("fp32", "int8")}  # fmt: skip
        info["parity"] = {q: json.loads((p / "manifest.json").read_text())["parity"] for q, p in exports.items()}
        for q, parity in info["parity"].items():
            print(f"export {q} parity: {parity}", flush=True)
        texts, test = texts_and_test(run, args.texts)
        max_length = json.loads((run / "run.json").read_text())["preprocessing"]["max_length"]
        rows = []
        for name, folder, file in (("torch", run, run / "model" / "model.safetensors"),
                                   ("onnx_fp32", exports["fp32"], exports["fp32"] / "model.onnx"),
                                   ("onnx_int8", exports["int8"], exports["int8"] / "model.onnx")):  # fmt: skip
            predictor = tunelab.load(folder)
            labels = lambda t, p=predictor: [x["label"] for x in p.predict(t, batch_size=BATCH)]  # noqa: E731
            rows.append(measure(name, labels, lambda text, p=predictor: p.predict([text]), texts, test, args.latency,
                                file.stat().st_size))  # fmt: skip
            del predictor
        pipe = transformers.pipeline("text-classification", model=str(run / "model"), device="cpu")

        def pipeline_labels(batch: list[str]) -> list[str]:
            return [x["label"] for x in pipe(batch, batch_size=1, truncation=True, max_length=max_length)]

        size = (run / "model" / "model.safetensors").stat().st_size
        rows.append(measure("pipeline", pipeline_labels, pipe, texts, test, args.latency, size))  # one: pipe(text)
    torch_labels = rows[0]["labels"]
    for r in rows:
        r["agreement_with_torch"] = sum(a == b for a, b in zip(r.pop("labels"), torch_labels)) / len(texts)
    arms = {r["arm"]: r for r in rows}
    info["arms"] = arms
    info["ratios"] = {
        "int8/torch": arms["onnx_int8"]["rows_per_s"] / arms["torch"]["rows_per_s"],
        "onnx_fp32/torch": arms["onnx_fp32"]["rows_per_s"] / arms["torch"]["rows_per_s"],
        "torch/pipeline": arms["torch"]["rows_per_s"] / arms["pipeline"]["rows_per_s"],
        "int8_accuracy_points_lost": 100 * (arms["torch"]["accuracy"] - arms["onnx_int8"]["accuracy"]),
    }
    # fmt: skip
    print(f"CPU: {cpu_line(info['machine'])}; {info['threads']} threads; precision: torch/onnx_fp32/pipeline fp32, "
          f"onnx_int8 int8 weights (dynamic activations)")  # fmt: skip
    print("ratios: " + ", ".join(f"{k} {v:.2f}" for k, v in info["ratios"].items()))
    (out / "results.json").write_text(json.dumps(info, indent=2) + "\n")
    if not args.smoke:
        append_results(info)


def append_results(info: dict) -> None:
    m = info["machine"]
    lines = [
        f"\n### ship — {info['date']} — {cpu_line(m)}, torch {m['torch']}, {info['threads']} threads"
        f"{' — ' + info['note'] if info['note'] else ''}\n",
        f"`{' '.join(info['argv']) or '(defaults)'}`; the demo run predicted on {info['arms']['torch']['rows']} "
        "texts per arm; accuracy on the run's test split; fp32 except onnx_int8\n",
        "| arm | rows/s | batch-1 p50 | file MB | test accuracy | labels = torch |",
        "|---|---|---|---|---|---|",
    ]
    # fmt: skip
    for arm, r in info["arms"].items():
        lines.append(f"| {arm} | {r['rows_per_s']:.1f} | {r['p50_ms']:.1f} ms | {r['size_mb']:.1f} | "
                     f"{r['accuracy']:.4f} | {r['agreement_with_torch']:.4f} |")  # fmt: skip
    ratios = info["ratios"]
    lines.append(f"\nint8 ×{ratios['int8/torch']:.2f} torch rows/s, {ratios['int8_accuracy_points_lost']:.2f} accuracy "
                 f"points lost; tunelab predict ×{ratios['torch/pipeline']:.2f} the pipeline. Export parity: "
                 f"{json.dumps(info['parity'])}")  # fmt: skip
    with open(RESULTS, "a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
