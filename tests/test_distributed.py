"""Two processes (torchrun, gloo) give the same losses and the same update as one process at the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
from safetensors.torch import load_file

from tests.conftest import tiny_recipe


def test_two_processes_match_one(tiny_bert, sentiment_csv, tmp_path):
    import yaml

    recipes = {}
    for name in ("one", "two"):
        recipe = tiny_recipe(tiny_bert, sentiment_csv, tmp_path / name, train={"max_steps": 4, "num_threads": 1})
        recipes[name] = tmp_path / f"{name}.yaml"
        recipes[name].write_text(yaml.safe_dump(recipe))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "tunelab.cli", "train", str(recipes["one"]), "--quiet"], check=True, env=env, timeout=300)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "tunelab.cli",
                    "train", str(recipes["two"]), "--quiet"], check=True, env=env, timeout=300)

    def losses(name):
        return [r["loss"] for r in map(json.loads, (tmp_path / name / "metrics.jsonl").read_text().splitlines()) if "loss" in r]

    assert len(losses("one")) == 4
    np.testing.assert_allclose(losses("two"), losses("one"), rtol=1e-5)
    one = load_file(tmp_path / "one" / "model" / "model.safetensors")
    two = load_file(tmp_path / "two" / "model" / "model.safetensors")
    for key in one:
        np.testing.assert_allclose(two[key].numpy(), one[key].numpy(), atol=2e-5, err_msg=key)
    m1 = json.loads((tmp_path / "one" / "metrics.json").read_text())
    m2 = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert m1["test"]["n"] == m2["test"]["n"]  # the test set is split across processes, then reduced
    assert abs(m1["test"]["loss"] - m2["test"]["loss"]) < 1e-4
