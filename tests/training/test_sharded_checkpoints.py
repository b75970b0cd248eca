"""Sharded (DCP) checkpoints, runs/sharded.py through runs/checkpoint.py: written by every process under fsdp,
atomically, and resumed at another number of processes and strategy with the same losses as an uninterrupted run."""

from __future__ import annotations

import signal

import numpy as np
import pytest
import torch
from torch.distributed.checkpoint import FileSystemReader

from tests.conftest import tiny_recipe
from tests.training.test_distributed import assert_same_weights, losses
from tests.training.test_fsdp import launch
from tunelab import api
from tunelab.errors import TunelabError
from tunelab.runs.checkpoint import Checkpointer
from tunelab.training.fit import Interrupted

pytestmark = pytest.mark.slow  # 15 s or more: scheduled first (tests/conftest.py)

# `tunelab train`, but the process of rank 1 kills itself (-9) while checkpoint $DIE_AT is written: after DCP wrote
# its shard, before the checkpoint is renamed into place
DIE_WRITING = """
import os, signal, sys
from tunelab.cli.commands import main
from tunelab.runs import sharded

write = sharded.save

def write_then_die(path, model, optimizer):
    write(path, model, optimizer)
    if path.parent.name == f".tmp-step-{int(os.environ['DIE_AT']):07d}" and os.environ["RANK"] == "1":
        os.kill(os.getpid(), signal.SIGKILL)

sharded.save = write_then_die
sys.argv[0] = "tunelab"
main()
"""


def test_fsdp_killed_and_resumed_at_other_world_sizes_continues_with_the_same_losses(
    tiny_bert, sentiment_csv, tmp_path, monkeypatch
):
    """LoRA, 8 steps, a checkpoint every 2, fp32 without dropout. One run goes through every way of loading one: one
    process (stopped at step 2) -> fsdp x2 from that whole checkpoint (rank 1 killed -9 while writing step 6) -> fsdp
    x2 from step 4's shards (killed writing step 8) -> one process from step 6's shards, to the end. Its losses and
    model/ are those of one process training 8 steps in one go."""
    recipe = tiny_recipe(
        tiny_bert,
        sentiment_csv,
        tmp_path / "run",
        method={"name": "lora", "r": 4, "dropout": 0.0},
        train={"max_steps": 8, "save_every": 2, "num_threads": 1},
    )
    one = api.train({**recipe, "train": {**recipe["train"], "output_dir": str(tmp_path / "one")}}, show_progress=False)
    run, checkpoints = tmp_path / "run", Checkpointer(tmp_path / "run" / "checkpoints")
    (tmp_path / "die.py").write_text(DIE_WRITING)

    def stop_at_2(step):
        if step == 2:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(Interrupted):
        api.train(recipe, show_progress=False, on_step=stop_at_2)
    assert (checkpoints.latest() / "model.safetensors").exists()

    def fsdp_dies_writing(step: int) -> None:
        monkeypatch.setenv("DIE_AT", str(step))
        command = ("train", "--resume", str(run), "--quiet", "--set", "distributed.strategy=fsdp")
        assert launch(2, *command, entry=(str(tmp_path / "die.py"),)) != 0

    fsdp_dies_writing(6)  # 1 -> 2: the whole checkpoint loaded shard by shard
    # the kill left the half-written step 6 aside: latest is step 4, complete, with every process's shard
    assert checkpoints.latest().name == "step-0000004" and (checkpoints.root / ".tmp-step-0000006").is_dir()
    assert sorted(p.name for p in (checkpoints.latest() / "sharded").iterdir()) == [
        ".metadata",
        "__0_0.distcp",
        "__1_0.distcp",
    ]
    assert not (checkpoints.latest() / "model.safetensors").exists()
    stored = FileSystemReader(checkpoints.latest() / "sharded").read_metadata().state_dict_metadata
    weights = [k for k in stored if k.startswith("model.")]
    assert weights and all("lora_" in k or "modules_to_save" in k for k in weights), weights  # adapter and head only
    fsdp_dies_writing(8)  # 2 -> 2
    assert checkpoints.latest().name == "step-0000006"
    # 2 -> 1: the shards read by one process without a process group
    api.train(resume=run, overrides={"distributed.strategy": "auto"}, show_progress=False)

    assert len(losses(one.dir)) == 8
    np.testing.assert_allclose(losses(run), losses(one.dir), rtol=1e-5)
    assert_same_weights(one.dir, run)


def test_sharded_checkpoint_keeps_only_the_trainable_tensors_and_names_another_model(tmp_path):
    """In one process (DCP without a process group): trainable weights and optimizer state only, loaded back
    exactly; a model with a trainable tensor the checkpoint lacks is told it was written for another model."""

    def model_and_optimizer(extra: bool = False):
        torch.manual_seed(0)
        layers = [torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)] + ([torch.nn.Linear(2, 2)] if extra else [])
        model = torch.nn.Sequential(*layers)
        model[0].requires_grad_(False)  # the frozen base
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
        return model, optimizer

    model, optimizer = model_and_optimizer()
    model(torch.ones(3, 4)).sum().backward()
    optimizer.step()
    path = Checkpointer(tmp_path, sharded=True).save(1, model, {"step": 1}, optimizer=optimizer)
    stored = FileSystemReader(path / "sharded").read_metadata().state_dict_metadata
    assert {k for k in stored if k.startswith("model.")} == {"model.1.weight", "model.1.bias"}

    again, again_optimizer = model_and_optimizer()
    assert Checkpointer(tmp_path).load(path, again, again_optimizer) == {"step": 1}
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    state, loaded = optimizer.state_dict()["state"], again_optimizer.state_dict()["state"]
    assert state.keys() == loaded.keys()
    torch.testing.assert_close(loaded[0]["exp_avg"], state[0]["exp_avg"], rtol=0, atol=0)
    weights_only, _ = model_and_optimizer()
    Checkpointer(tmp_path).load(path, weights_only)  # no optimizer: the weights alone (restoring a model)
    torch.testing.assert_close(weights_only[1].weight, model[1].weight, rtol=0, atol=0)

    with pytest.raises(TunelabError, match="written for another model or method"):
        Checkpointer(tmp_path).load(path, *model_and_optimizer(extra=True))
