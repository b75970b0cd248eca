"""Atomic checkpoints: latest switches only when complete, best survives a kill, clear errors."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import TinyNet
from tunelab.errors import TunelabError
from tunelab.runs.checkpoint import Checkpointer, restore_best


def test_checkpoint_switches_latest_only_when_complete(tmp_path, monkeypatch):
    net = TinyNet()
    ck = Checkpointer(tmp_path)
    ck.save(1, net, {"step": 1})
    assert ck.latest().name == "step-0000001"
    import tunelab.runs.checkpoint as module

    def killed(*a, **k):
        raise KeyboardInterrupt  # the process dies while writing the next checkpoint

    monkeypatch.setattr(module.torch, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        ck.save(2, net, {"step": 2})
    monkeypatch.undo()
    assert ck.latest().name == "step-0000001"
    assert ck.load(ck.latest(), net)["step"] == 1
    ck.save(3, net, {"step": 3})
    assert ck.latest().name == "step-0000003" and not (tmp_path / "step-0000001").exists()


def test_a_kill_between_the_best_renames_still_restores_the_best_weights(tmp_path, monkeypatch):
    import tunelab.runs.checkpoint as module

    net = TinyNet()
    ck = Checkpointer(tmp_path)
    ck.save_best(net)  # the best so far
    best = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        net.linear.weight.add_(1.0)  # training moves on; a better validation starts a new best/
    real_replace = module.os.replace

    def killed_before_the_new_best_lands(src, dst):
        if str(dst).endswith("best") and not str(dst).endswith(".old-best"):
            raise KeyboardInterrupt  # best/ is already .old-best, the new one not yet renamed into place
        real_replace(src, dst)

    monkeypatch.setattr(module.os, "replace", killed_before_the_new_best_lands)
    with pytest.raises(KeyboardInterrupt):
        ck.save_best(net)
    monkeypatch.undo()
    assert not (tmp_path / "best").exists() and (tmp_path / ".old-best").exists()
    with torch.no_grad():
        net.linear.weight.add_(1.0)  # the last weights differ from both
    assert restore_best(net, tmp_path)  # the same lookup as Checkpointer.best(): .old-best
    assert torch.equal(net.linear.weight, best["linear.weight"])


def test_a_checkpoint_of_another_model_is_a_clear_error(tmp_path):
    ck = Checkpointer(tmp_path)
    ck.save(1, TinyNet(), {"step": 1})
    other = torch.nn.Sequential(torch.nn.Linear(4, 2))
    with pytest.raises(
        TunelabError, match="step-0000001/model.safetensors: the checkpoint lacks 2 of the model's trainable tensors"
    ):
        ck.load(ck.latest(), other)


def test_a_one_process_run_never_imports_distributed_checkpointing(tmp_path):
    """torch.distributed.checkpoint (with DTensor, torch.fx, sympy: ~1.1 s of start-up on 2 cores) loads only when a
    sharded checkpoint is written or read; a whole checkpoint saved and loaded leaves it out, as does peft."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, torch; from tests.conftest import TinyNet; from tunelab.runs.checkpoint import Checkpointer; "
        "import tunelab.api, tunelab.tasks.common as c, tunelab.training.fit; c.versions(); "
        f"ck = Checkpointer(__import__('pathlib').Path({str(tmp_path)!r})); net = TinyNet(); ck.save(1, net, {{}}); "
        "ck.load(ck.latest(), net); "
        "print(sorted(m for m in ('torch.distributed.checkpoint', 'sympy', 'peft') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]  # where `tests.conftest` imports from
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root).stdout
    assert out.strip() == "[]"
