"""The benchmark scripts run end to end (2 steps, tiny model, --smoke) so they can't rot. No timing assertions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tunelab

ROOT = Path(__file__).resolve().parents[1]


def run_benchmark(script: str, tmp_path: Path, *extra: str) -> dict:
    results_md = ROOT / "benchmarks" / "RESULTS.md"
    before = results_md.read_text() if results_md.exists() else None
    env = dict(os.environ)
    # the children must import this tree's tunelab, whatever is installed
    env["PYTHONPATH"] = os.pathsep.join([str(Path(tunelab.__file__).parents[1]), str(ROOT), env.get("PYTHONPATH", "")])
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--smoke", "--steps", "2", "--repeats", "1", "--out", str(out), *extra],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (results_md.read_text() if results_md.exists() else None) == before, "--smoke must never write RESULTS.md"
    return json.loads((out / "results.json").read_text())


def test_classify_benchmark_smoke(tiny_bert, tmp_path):
    res = run_benchmark("classify.py", tmp_path, "--model", str(tiny_bert))
    assert set(res["summary"]) == {"tunelab", "trainer", "trainer_tuned"}
    runs = {r["arm"]: r for r in res["runs"]}
    assert runs["tunelab"]["tunelab_file"].startswith(str(Path(tunelab.__file__).parent))
    # equal work: the same samples and the same real tokens in every arm
    assert len({(r["samples"], r["tokens"]) for r in runs.values()}) == 1
    assert runs["tunelab"]["samples"] == 64 and runs["tunelab"]["steps"] == 2
    for r in runs.values():
        assert r["train_s"] > 0 and r["peak_rss"] > 0 and 0 <= r["metric"] <= 1
    assert "tunelab/trainer" in res["ratios"] and "mfu" in res["summary"]["tunelab"]
