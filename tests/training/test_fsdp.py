"""FSDP2 (distributed.strategy: fsdp) under torchrun with gloo: the same per-step losses and the same saved model as
DDP with two processes and as one process, for full fine-tuning and LoRA; and the strategy's validation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from tests.conftest import tiny_recipe
from tests.training.test_distributed import assert_same_weights, losses
from tunelab import api
from tunelab.config import load_config
from tunelab.errors import TunelabError
from tunelab.training.distributed import resolve_strategy

pytestmark = pytest.mark.slow  # 15 s or more: scheduled first (tests/conftest.py)

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def train(recipe: dict, path, processes: int, *sets: str) -> None:
    path.write_text(yaml.safe_dump(recipe))
    assert launch(processes, "train", str(path), "--quiet", *(a for s in sets for a in ("--set", s))) == 0


def launch(processes: int, *args: str, entry=("-m", "tunelab.cli")) -> int:
    """`python -m tunelab.cli ARGS` (or another entry: a script) in one process or under torchrun with two; its exit
    status."""
    command = [*(TORCHRUN if processes == 2 else [sys.executable]), *entry, *args]
    # its own process group, so that a hang (a collective one process never reaches) kills the workers too
    proc = subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    try:
        return proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def one_ddp_fsdp(tmp_path, fsdp_sets=(), **sections) -> dict:
    """One process, torchrun x2 with DDP, torchrun x2 with FSDP: the three run directories."""
    runs = {}
    for name, processes, sets in (
        ("one", 1, ()),
        ("ddp", 2, ("distributed.strategy=ddp",)),
        ("fsdp", 2, ("distributed.strategy=fsdp", *fsdp_sets)),
    ):
        runs[name] = tmp_path / name
        train(tiny_recipe(**sections, out=runs[name]), tmp_path / f"{name}.yaml", processes, *sets)
    return runs


def assert_same_runs(runs: dict, steps: int) -> None:
    assert len(losses(runs["one"])) == steps
    for name in ("ddp", "fsdp"):
        np.testing.assert_allclose(losses(runs[name]), losses(runs["one"]), rtol=1e-5, err_msg=name)
        assert_same_weights(runs["one"], runs[name])
    m1, m2 = (json.loads((runs[n] / "metrics.json").read_text()) for n in ("one", "fsdp"))
    assert m1["test"]["n"] == m2["test"]["n"] and abs(m1["test"]["loss"] - m2["test"]["loss"]) < 1e-4
    assert m1["best_step"] == m2["best_step"]
    for name in ("ddp", "fsdp"):
        info = json.loads((runs[name] / "run.json").read_text())
        assert info["distributed"] == {"strategy": name, "processes": 2, "launcher": "torchrun"}


def test_fsdp_matches_ddp_and_one_process(tiny_bert, sentiment_csv, tmp_path):
    """Full fine-tuning, validation at steps 2 and 4 (the best checkpoint gathered). Uneven shares: steps of 7 one
    example per forward (4 forwards on rank 0, 3 on rank 1) and 9 validation examples 2 per forward (3 and 2), so
    under fsdp the process with fewer forwards pads with ones that count for nothing."""
    runs = one_ddp_fsdp(
        tmp_path,
        model_dir=tiny_bert,
        data_file=sentiment_csv,
        data={"validation_fraction": 0.075, "test_fraction": 0.075},
        train={"max_steps": 4, "num_threads": 1, "eval_every": 2, "batch_size": 7, "micro_batch_size": 1},
        eval={"batch_size": 2},
    )
    assert_same_runs(runs, 4)
    assert json.loads((runs["fsdp"] / "run.json").read_text())["data"]["validation"] % 2 == 1


def test_fsdp_matches_ddp_and_one_process_for_lora(tiny_bert, sentiment_csv, tmp_path):
    """LoRA (frozen base sharded, adapter and head trained), 2 micro-batches per process (gradients reduced with the
    last one), and under fsdp activation checkpointing on top: recomputing changes no number."""
    runs = one_ddp_fsdp(
        tmp_path,
        ("model.gradient_checkpointing=true",),
        model_dir=tiny_bert,
        data_file=sentiment_csv,
        method={"name": "lora", "r": 4, "dropout": 0.0},
        train={"max_steps": 3, "num_threads": 1, "micro_batch_size": 2},
    )
    assert_same_runs(runs, 3)
    assert (runs["fsdp"] / "adapter" / "adapter_model.safetensors").exists()


def test_blocks_are_the_transformer_layers_and_keep_tied_weights_together():
    from transformers import BertConfig, BertForMaskedLM, BertForSequenceClassification

    from tunelab.training.fsdp import blocks

    config = BertConfig(vocab_size=100, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16)
    found = [type(b).__name__ for b in blocks(BertForSequenceClassification(config))]
    assert found == ["BertEmbeddings", "BertLayer", "BertLayer"]  # its _no_split_modules
    # the masked-LM head's decoder shares the word embeddings: the embeddings stay in the root's unit
    assert [type(b).__name__ for b in blocks(BertForMaskedLM(config))] == ["BertLayer", "BertLayer"]
    layers = torch.nn.ModuleList([torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)])
    assert blocks(torch.nn.Sequential(layers, torch.nn.ReLU())) == list(layers)  # no names: its list of layers


def test_strategy_validation(tiny_bert, sentiment_csv, tmp_path):
    assert load_config({"distributed": {"strategy": "fsdp"}}).distributed.strategy == "fsdp"
    assert load_config({}).distributed.strategy == "auto"
    with pytest.raises(Exception, match="auto"):
        load_config({"distributed": {"strategy": "zero3"}})
    assert resolve_strategy("auto", 1) == "ddp" and resolve_strategy("auto", 2, accelerate_fsdp=False) == "ddp"
    assert resolve_strategy("auto", 2, accelerate_fsdp=True) == "fsdp"  # an `accelerate launch` FSDP config
    assert resolve_strategy("ddp", 2, accelerate_fsdp=True) == "ddp"  # the recipe's explicit choice wins
    with pytest.raises(TunelabError, match="one process, so there is nothing to shard"):
        resolve_strategy("fsdp", 1)
    with pytest.raises(TunelabError, match="torchrun --nproc_per_node 2"):  # a run in one process says so at once
        api.train(tiny_recipe(tiny_bert, sentiment_csv, tmp_path / "run", distributed={"strategy": "fsdp"}))
