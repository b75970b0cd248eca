"""AdamW parameter groups and the warm-up + decay schedules."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import TinyNet
from tunelab.config import OptimConfig
from tunelab.training.optim import build_optimizer, build_scheduler


def test_no_weight_decay_on_biases_and_norms():
    net = TinyNet()
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
