"""benchmarks/serve.py runs end to end on the tiny runs (--smoke), so it cannot rot. No timing assertions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tunelab
from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # 15 s or more: scheduled first (tests/conftest.py)


def test_serve_benchmark_smoke(served_runs, tmp_path):
    results_md = tmp_path / "RESULTS.md"
    env = dict(os.environ, TUNELAB_BENCH_RESULTS=str(results_md))
    env["PYTHONPATH"] = os.pathsep.join([str(Path(tunelab.__file__).parents[1]), str(ROOT), env.get("PYTHONPATH", "")])
    argv = [sys.executable, str(ROOT / "benchmarks" / "serve.py"), "--smoke", "--out", str(tmp_path / "out"),
            "--classify-run", str(served_runs["sentiment"]), "--chat-run", str(served_runs["chatbot"])]  # fmt: skip
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not results_md.exists(), "--smoke must never write RESULTS.md"
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(res["classify"]["arms"]) == {"tunelab", "pipeline"}
    assert set(res["chat"]["arms"]) == {"tunelab", "sequential_generate"}
    assert res["classify"]["same_labels"] and res["chat"]["same_answers"]
    assert all(r["requests_per_s"] > 0 for r in res["classify"]["arms"].values())
    assert "CPU:" in proc.stdout
