"""`tunelab doctor --estimate`: the run's time and peak memory on this machine, from a few measured steps.

A child process trains the recipe itself (the same story, data, model, method and precision) without validation or
test, timing each optimizer step, and stops after 20 steps or 55 s since it started (setup included; at least 3
steps). Its first step is the batch of the longest examples (train.longest_first), so its peak RSS holds the model,
optimizer state, data and the largest activations (a long run's RSS still grows past it: the allocator keeps memory
for the many batch shapes it meets; docs/commands/doctor.md). Generation (sft's base-vs-tuned answers) is not
measured and is said to be left out. The estimate is then, from the recipe and the run's split sizes:

    setup (read, tokenise, load: measured) + steps x seconds per step (the mean of the steps after the first:
      batches vary in length, and the mean is what adds up)
    + validations and test: examples x (seconds per training example / 3)   (a forward pass is about a third of a
      forward and backward; docs/commands/doctor.md compares this with real runs)
"""

from __future__ import annotations

import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tunelab.config import Config

MAX_STEPS, MAX_SECONDS = 20, 55.0  # the measuring child, setup included: about a minute


def estimate(cfg: Config, sizes: dict) -> dict:
    """{"seconds", "peak_rss_mb", "steps", ...} for the recipe's whole run, measured in a child process."""
    raw = cfg.dump()
    with tempfile.TemporaryDirectory() as tmp:
        # the first step on the longest examples (train.longest_first): the peak RSS holds the largest activations
        raw["train"].update(output_dir=str(Path(tmp) / "run"), folds=None, max_steps=None, eval_every=None,
                            longest_first=True)  # fmt: skip
        raw["data"].update(validation=None, test=None, validation_fraction=0.0, test_fraction=0.0)
        # augmentation copies cost the same per step as their sources (the step count has them): none written here
        if "augment" in raw["data"]:  # (a field of the classification family)
            raw["data"]["augment"] = {"method": "none"}
        request, answer = Path(tmp) / "recipe.json", Path(tmp) / "measured.json"
        request.write_text(json.dumps(raw))
        done = subprocess.run(
            [sys.executable, "-m", "tunelab.doctor.estimate", str(request), str(answer)], capture_output=True, text=True
        )
        if done.returncode != 0 or not answer.exists():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            return {"error": f"the measuring run failed: {tail[0][:300]}"}
        measured = json.loads(answer.read_text())
    return extrapolate(cfg, sizes, measured)


def extrapolate(cfg: Config, sizes: dict, measured: dict) -> dict:
    t = cfg.train
    n_train, n_val, n_test = (sizes["splits"][k] for k in ("train", "validation", "test"))
    rows = sizes.get("train_rows") or n_train  # lm/mlm: the pieces of the documents; augmentation's copies
    per_example = rows / max(n_train * (1 + sizes.get("copies", 0)), 1)  # pieces per example (1 but in lm/mlm)
    n_val, n_test = (round(n * per_example) for n in (n_val, n_test))  # held out: pieces too, never copies
    steps_per_epoch = max(1, -(-rows // t.batch_size))
    steps = t.max_steps or max(1, math.ceil(t.epochs * steps_per_epoch))
    if t.max_tokens and sizes.get("row_tokens"):  # the token budget, as fit applies it
        steps = min(steps, max(1, math.ceil(t.max_tokens / (sizes["row_tokens"] * t.batch_size))))
    eval_every = t.eval_every or steps_per_epoch
    validations = (steps // eval_every + (steps % eval_every > 0)) if n_val else 0
    per_forward = measured["step_seconds"] / t.batch_size / 3  # forward only
    train_s = steps * measured["step_seconds"]
    held_out_s = (validations * n_val + n_test * sizes.get("test_passes", 1)) * per_forward
    left_out = [f"generating {n} answers, base and tuned"] if (n := sizes.get("generates")) else []
    if n := sizes.get("paraphrases"):
        left_out.append(f"writing {n} paraphrases (the first run only: they are cached)")
    return {
        "seconds": round(measured["setup_seconds"] + train_s + held_out_s, 1),
        "steps": steps,
        "step_seconds": round(measured["step_seconds"], 4),
        "setup_seconds": round(measured["setup_seconds"], 1),
        "train_seconds": round(train_s, 1),
        "validations": validations,
        "held_out_seconds": round(held_out_s, 1),
        "peak_rss_mb": round(measured["peak_rss"] / 2**20),
        "measured_steps": measured["steps"],
        # generation is not measured (the child only trains): said, not guessed
        **({"left_out": "; not counted: " + " and ".join(left_out)} if left_out else {}),
    }  # fmt: skip


class _Enough(Exception):
    """Raised from on_step once enough steps are timed: the measuring run stops there."""


def _child(request: Path, answer: Path) -> None:
    import tunelab

    raw = json.loads(request.read_text())
    marks: list[float] = []
    started = time.perf_counter()

    def on_step(step: int) -> None:
        marks.append(time.perf_counter())
        if len(marks) >= MAX_STEPS or (len(marks) >= 3 and marks[-1] - started > MAX_SECONDS):
            raise _Enough

    try:
        tunelab.train(raw, show_progress=False, on_step=on_step)
    except _Enough:
        pass
    gaps = [b - a for a, b in zip(marks, marks[1:])]
    step = statistics.fmean(gaps) if gaps else marks[0] - started
    answer.write_text(
        json.dumps(
            {
                "step_seconds": step,
                "setup_seconds": max(0.0, marks[0] - started - step),
                "steps": len(marks),
                "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            }
        )
    )


if __name__ == "__main__":
    _child(Path(sys.argv[1]), Path(sys.argv[2]))
