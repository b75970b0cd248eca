"""Device and precision choice (training/devices.py, training/precision.py): the selection table with made-up machines,
so the CUDA and MPS rows are checked on this CPU-only machine; the fp16 loop (gradient scaler) run once on the CPU."""

from __future__ import annotations

import json

import pytest
import torch

import tunelab
from tests.conftest import tiny_recipe
from tunelab.errors import TunelabError
from tunelab.training import devices
from tunelab.training.devices import Machine, pick_device
from tunelab.training.precision import needs_scaler, resolve, serving_precision

CPU_ONLY = Machine()
CPU_BF16 = Machine(cpu_bf16=True)
AMPERE = Machine(cuda=True, cuda_bf16=True)  # A100, H100, RTX 30xx and newer
TURING = Machine(cuda=True)  # T4, V100, RTX 20xx: no bf16
MAC = Machine(mps=True)


@pytest.mark.parametrize(
    "machine, choice, expected",
    [
        (AMPERE, "auto", "cuda"),
        (TURING, "auto", "cuda"),
        (MAC, "auto", "mps"),
        (CPU_ONLY, "auto", "cpu"),
        (AMPERE, "cpu", "cpu"),  # the CPU is always there
        (MAC, "mps", "mps"),
    ],
)
def test_pick_device(machine, choice, expected):
    assert pick_device(choice, machine) == expected


@pytest.mark.parametrize("machine, choice", [(CPU_ONLY, "cuda"), (MAC, "cuda"), (AMPERE, "mps")])
def test_an_explicit_device_that_is_not_there_is_a_clear_error(machine, choice):
    with pytest.raises(TunelabError) as e:
        pick_device(choice, machine)
    message = str(e.value)
    assert f"train.device is '{choice}'" in message and "train.device: auto" in message
    assert f"This machine has: {'mps, cpu' if machine is MAC else 'cuda, cpu' if machine.cuda else 'cpu'}" in message


@pytest.mark.parametrize(
    "machine, device, precision, expected",
    [
        (AMPERE, "cuda", "auto", "bf16"),
        (TURING, "cuda", "auto", "fp16"),  # an older GPU: fp16 with the gradient scaler
        (TURING, "cuda", "fp32", "fp32"),
        (AMPERE, "cuda", "fp16", "fp16"),  # asked for: as given
        (MAC, "mps", "auto", "fp32"),
        (MAC, "mps", "fp16", "fp16"),
        (MAC, "mps", "bf16", "bf16"),
        (CPU_BF16, "cpu", "auto", "bf16"),  # the CPU rows exactly as before devices were added
        (CPU_ONLY, "cpu", "auto", "fp32"),
        (CPU_ONLY, "cpu", "bf16", "bf16"),
        (CPU_ONLY, "cpu", "fp32", "fp32"),
        (AMPERE, "cpu", "auto", "fp32"),  # train.device: cpu on a GPU machine: the CPU's own answer
    ],
)
def test_resolve_precision(machine, device, precision, expected):
    assert resolve(precision, torch.device(device), machine) == expected
    assert needs_scaler(expected) == (expected == "fp16")


def test_fp16_on_the_cpu_is_refused():
    with pytest.raises(TunelabError, match="fp16 is for GPUs without bf16"):
        resolve("fp16", torch.device("cpu"), CPU_BF16)


def test_serving_falls_back_to_fp32_where_the_low_precision_is_slow(monkeypatch):
    monkeypatch.setattr(devices.Machine, "probe", classmethod(lambda cls: CPU_ONLY))
    cpu = torch.device("cpu")
    assert serving_precision("fp16", cpu) == "fp32" and serving_precision("bf16", cpu) == "fp32"
    assert serving_precision("fp32", cpu) == "fp32"
    monkeypatch.setattr(devices.Machine, "probe", classmethod(lambda cls: TURING))
    assert serving_precision("fp16", torch.device("cuda")) == "fp16"


def test_the_recipe_device_reaches_the_accelerator(monkeypatch):
    from tunelab.training.distributed import make_accelerator

    monkeypatch.setattr(devices.Machine, "probe", classmethod(lambda cls: CPU_ONLY))
    with pytest.raises(TunelabError, match="train.device is 'cuda'"):
        make_accelerator(device="cuda")
    assert make_accelerator(device="auto").device.type == "cpu"


def test_the_fp16_loop_runs_on_the_cpu_and_matches_fp32(tiny_bert, sentiment_csv, tmp_path, monkeypatch):
    """The recipe refuses fp16 on a CPU, so the story's resolved precision is forced to fp16: the loop then takes
    its GPU path (autocast fp16, scaled backward, unscale before clipping, scaler step) on torch's CPU GradScaler."""

    def train(precision: str, out: str):
        monkeypatch.setattr("tunelab.tasks.common.resolve_precision", lambda *args: precision)
        recipe = tiny_recipe(tiny_bert, sentiment_csv, tmp_path / out, train={"max_steps": 4, "eval_every": 4})
        return tunelab.train(recipe, show_progress=False).dir

    fp32, fp16 = train("fp32", "fp32"), train("fp16", "fp16")

    assert len(logged(fp16, "loss")) == 4
    # the gradients are unscaled before clipping (max_grad_norm 1.0) and stepping: the same norms and updates as fp32,
    # up to fp16 rounding (a forgotten unscale would log norms 65536 times larger)
    assert logged(fp16, "grad_norm") == pytest.approx(logged(fp32, "grad_norm"), rel=5e-2)
    assert logged(fp16, "loss") == pytest.approx(logged(fp32, "loss"), rel=1e-3)
    state = torch.load(next((fp16 / "checkpoints").glob("step-*")) / "trainer.pt", weights_only=False)
    assert state["scaler"]["scale"] > 0  # the loss scale is kept for an exact resume
    fp32_state = torch.load(next((fp32 / "checkpoints").glob("step-*")) / "trainer.pt", weights_only=False)
    assert fp32_state["scaler"] == {}


def test_an_fp16_overflow_skips_the_step_instead_of_stopping_the_run(tiny_bert, sentiment_csv, tmp_path, monkeypatch):
    """A loss scale so large that the fp16 gradients overflow: the scaler skips those steps and halves its scale; the
    loop must not take the infinite gradient norm for divergence (NonFiniteLoss)."""
    huge = 2.0**100
    monkeypatch.setattr("tunelab.tasks.common.resolve_precision", lambda *args: "fp16")
    scaler = torch.amp.GradScaler
    monkeypatch.setattr(
        torch.amp, "GradScaler", lambda device, enabled: scaler(device, init_scale=huge, enabled=enabled)
    )
    recipe = tiny_recipe(tiny_bert, sentiment_csv, tmp_path / "run", train={"max_steps": 2, "eval_every": 2})
    run = tunelab.train(recipe, show_progress=False).dir
    # no inf/nan in metrics.jsonl (the dashboard reads it as JSON) and no "unstable" diagnosis from an overflow
    assert logged(run, "grad_norm") == [None, None]
    findings = json.loads((run / "metrics.json").read_text())["diagnosis"]["findings"]
    assert "unstable" not in [f["kind"] for f in findings]
    assert logged(run, "lr") == [1e-3, 1e-3]  # a skipped step does not advance the schedule
    state = torch.load(next((run / "checkpoints").glob("step-*")) / "trainer.pt", weights_only=False)
    assert state["scaler"]["scale"] == huge / 4  # halved after each skipped step


def logged(run_dir, key: str) -> list:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r[key] for r in map(json.loads, lines) if key in r]


def test_models_load_with_sdpa_attention(tiny_bert):
    """transformers 5 picks SDPA (fused attention kernels) where a model supports it; tunelab's loader keeps that."""
    from tunelab.config import ModelConfig
    from tunelab.models.load import load_sequence_classifier
    from tunelab.models.load import resolve as resolve_model

    cfg = ModelConfig(name=str(tiny_bert))
    model = load_sequence_classifier(resolve_model(cfg), cfg, {0: "neg", 1: "pos"}, "single_label_classification")
    assert model.config._attn_implementation == "sdpa"
