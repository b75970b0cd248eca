"""Two processes (torchrun, gloo) give the same losses and the same update as one process at the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
from safetensors.torch import load_file

from tests.conftest import tiny_lm_recipe, tiny_recipe


def run_one_and_two(recipe_of, tmp_path) -> dict:
    """Train the same recipe in one process and under torchrun with two (gloo); the two run directories."""
    import yaml

    paths = {}
    for name in ("one", "two"):
        paths[name] = tmp_path / f"{name}.yaml"
        paths[name].write_text(yaml.safe_dump(recipe_of(tmp_path / name)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, "-m", "tunelab.cli", "train", str(paths["one"]), "--quiet"], check=True, env=env, timeout=300
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "tunelab.cli",
            "train",
            str(paths["two"]),
            "--quiet",
        ],
        check=True,
        env=env,
        timeout=300,
    )
    return {name: tmp_path / name for name in paths}


def losses(run_dir):
    return [r["loss"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


def assert_same_weights(one, two, atol=2e-5):
    a, b = load_file(one / "model" / "model.safetensors"), load_file(two / "model" / "model.safetensors")
    for key in a:
        np.testing.assert_allclose(b[key].numpy(), a[key].numpy(), atol=atol, err_msg=key)


def test_two_processes_match_one(tiny_bert, sentiment_csv, tmp_path):
    runs = run_one_and_two(
        lambda out: tiny_recipe(tiny_bert, sentiment_csv, out, train={"max_steps": 4, "num_threads": 1}), tmp_path
    )
    assert len(losses(runs["one"])) == 4
    np.testing.assert_allclose(losses(runs["two"]), losses(runs["one"]), rtol=1e-5)
    assert_same_weights(runs["one"], runs["two"])
    m1 = json.loads((runs["one"] / "metrics.json").read_text())
    m2 = json.loads((runs["two"] / "metrics.json").read_text())
    assert m1["test"]["n"] == m2["test"]["n"]  # the test set is split across processes, then reduced
    assert abs(m1["test"]["loss"] - m2["test"]["loss"]) < 1e-4


def test_two_processes_match_one_for_lora_sft(tiny_llama, chat_jsonl, tmp_path):
    """Token-normalised loss over both processes' micro-batches: the same update as one process (LoRA, packed chats)."""
    recipe = lambda out: tiny_lm_recipe(  # noqa: E731
        tiny_llama,
        chat_jsonl,
        out,
        method={"name": "lora", "r": 4, "dropout": 0.0},
        data={"packing": True},
        train={"max_steps": 3, "batch_size": 4, "log_every": 1},
    )
    runs = run_one_and_two(recipe, tmp_path)
    assert len(losses(runs["one"])) == 3
    np.testing.assert_allclose(losses(runs["two"]), losses(runs["one"]), rtol=1e-5)
    assert_same_weights(runs["one"], runs["two"])
    m1 = json.loads((runs["one"] / "metrics.json").read_text())
    m2 = json.loads((runs["two"] / "metrics.json").read_text())
    assert m1["test"]["tokens"] == m2["test"]["tokens"] and abs(m1["test"]["loss"] - m2["test"]["loss"]) < 1e-4
