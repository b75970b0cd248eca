"""Task-neutral training components: optimizer groups, schedules, early stopping, checkpoints, class weights."""

from __future__ import annotations

import pytest
import torch

from tunelab.config import OptimConfig
from tunelab.errors import TunelabError
from tunelab.models.heads import class_weights
from tunelab.runs.checkpoint import Checkpointer, restore_best
from tunelab.training.early_stopping import EarlyStopper
from tunelab.training.optim import build_optimizer, build_scheduler


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)
        self.LayerNorm = torch.nn.LayerNorm(4)
        self.frozen = torch.nn.Linear(4, 4).requires_grad_(False)


def test_no_weight_decay_on_biases_and_norms():
    net = Net()
    opt = build_optimizer(net, OptimConfig(weight_decay=0.1))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and [p.shape for p in decay["params"]] == [net.linear.weight.shape]
    assert (
        no_decay["weight_decay"] == 0.0 and len(no_decay["params"]) == 3
    )  # bias, LN weight, LN bias (frozen excluded)


@pytest.mark.parametrize("kind", ["linear", "cosine", "constant"])
def test_schedule_warms_up_then_decays(kind):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_scheduler(opt, OptimConfig(lr=1.0, scheduler=kind, warmup_steps=4), total_steps=20)
    lrs = []
    for _ in range(20):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs[:5] == sorted(lrs[:5]) and lrs[0] < 0.5 and max(lrs) == pytest.approx(1.0)
    if kind == "constant":
        assert lrs[-1] == 1.0
    else:
        assert lrs[-1] < 0.1 and lrs[5:] == sorted(lrs[5:], reverse=True)


def test_early_stopper_records_best_and_stops_after_patience():
    s = EarlyStopper("accuracy", higher_is_better=True, patience=2)
    assert s.update(0.5, 10) and not s.update(0.4, 20) and not s.should_stop
    assert not s.update(0.5, 30) and s.should_stop and (s.best, s.best_step) == (0.5, 10)
    never = EarlyStopper("mse", higher_is_better=False)
    for step, v in enumerate([3.0, 2.0, 2.5, 2.6, 2.7]):
        never.update(v, step)
    assert not never.should_stop and never.best == 2.0


def test_checkpoint_switches_latest_only_when_complete(tmp_path, monkeypatch):
    net = Net()
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

    net = Net()
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
    ck.save(1, Net(), {"step": 1})
    other = torch.nn.Sequential(torch.nn.Linear(4, 2))
    with pytest.raises(
        TunelabError, match="step-0000001/model.safetensors: the checkpoint lacks 2 of the model's trainable tensors"
    ):
        ck.load(ck.latest(), other)


def test_class_weights():
    w = class_weights("balanced", [0, 0, 0, 1], 2)
    assert torch.allclose(w, torch.tensor([4 / 6, 4 / 2]))
    assert class_weights("none", [0, 1], 2) is None


def test_missing_asset_package_says_how_to_install():
    from tunelab.assets import package_file

    with pytest.raises(TunelabError, match="pip install --no-deps not-a-real-pkg"):
        package_file("not_a_real_pkg_xyz", "data/x.txt", "not-a-real-pkg")


def test_early_stopping_in_training_keeps_the_best_checkpoint(tiny_bert, sentiment_csv, tmp_path):
    import json

    import tunelab
    from tests.conftest import tiny_recipe

    recipe = tiny_recipe(
        tiny_bert,
        sentiment_csv,
        tmp_path / "run",
        train={"max_steps": 40, "eval_every": 2},
        optim={"lr": 0.05},
        eval={"patience": 1, "metric": "loss"},
    )
    run = tunelab.train(recipe, show_progress=False)
    m = run.metrics
    assert m["status"] == "stopped_early" and m["steps"] < 40
    vals = [
        r["val_loss"] for r in map(json.loads, (run.dir / "metrics.jsonl").read_text().splitlines()) if "val_loss" in r
    ]
    assert m["validation"]["loss"] == min(vals) and m["best_step"] == 2 * (vals.index(min(vals)) + 1)
