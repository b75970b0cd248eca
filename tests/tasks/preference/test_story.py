"""Preference runs end to end on a tiny random llama: reward accuracy rises (DPO with LoRA, SimPO with full
fine-tuning), the reference is kept in the run directory and a resumed run continues with the same losses, ORPO
and SimPO need no reference, and the run serves as an sft run does (tunelab.load -> generate)."""

from __future__ import annotations

import json
import random
import signal

import numpy as np
import pytest

import tunelab
from tests.conftest import QUESTIONS, tiny_lm_recipe, write_jsonl
from tunelab.errors import TunelabError

pytestmark = pytest.mark.slow  # 15 s or more: scheduled first (tests/conftest.py)

WRONG = ["No idea.", "I refuse to answer.", "Bananas, always bananas.", "Ask me tomorrow."]


def make_preferences(n: int, seed: int = 0) -> list[dict]:
    """An evasive answer (chosen) against the right short one (rejected): the tiny random model starts preferring the
    short answers (per token), so reward accuracy starts low; prompts are numbered, so they do not repeat."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        q, a = rng.choice(QUESTIONS)
        rows.append({"prompt": f"{q} (#{i})", "chosen": rng.choice(WRONG), "rejected": a})
    return rows


@pytest.fixture
def preferences(tmp_path):
    return write_jsonl(tmp_path / "pairs.jsonl", make_preferences(80))


def recipe(tiny_llama, pairs_file, out, **sections) -> dict:
    r = tiny_lm_recipe(tiny_llama, pairs_file, out, task="preference", **sections)
    r["data"]["max_length"] = sections.get("data", {}).get("max_length", 96)
    r["train"].update({"batch_size": 8, "eval_every": 5, **sections.get("train", {})})
    r["eval"]["batch_size"] = 16
    return r


def losses(run_dir) -> list[float]:
    return [
        row["loss"] for row in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if "loss" in row
    ]


def test_dpo_with_lora_raises_reward_accuracy_and_keeps_its_reference(tiny_llama, preferences, tmp_path):
    r = recipe(tiny_llama, preferences, tmp_path / "run", method={"name": "lora", "r": 8},
               optim={"lr": 5e-2}, train={"max_steps": 20})  # fmt: skip
    run = tunelab.train(r, show_progress=False)
    m = run.metrics
    assert run.info["preference"] == {"loss": "dpo", "beta": 0.1, "gamma": None, "orpo_weight": None, "sft_weight": 0.0}
    assert m["base"]["test"]["reward_accuracy"] < 0.3
    assert m["test"]["reward_accuracy"] >= 0.9 and m["test"]["dpo_reward_accuracy"] >= 0.9
    assert m["test"]["reward_margin"] > 0 and "reward_margin" not in m["base"]["test"]
    assert m["test"]["chosen_logp"] > m["base"]["test"]["chosen_logp"]
    assert (run.dir / "reference_logps.npz").exists() and run.info["reference"]["read_back"] is False
    assert set(m["generation"]) >= {"token_f1", "exact_match", "rougeL"}
    # the run is used as an sft run is: its merged model answers with the chat template
    generator = tunelab.load(run.dir)
    assert generator.chat and len(generator.generate(["What is H2O?"], max_new_tokens=3)) == 1


def test_simpo_with_full_fine_tuning_needs_no_reference(tiny_llama, preferences, tmp_path):
    r = recipe(tiny_llama, preferences, tmp_path / "run", method={"name": "full"}, optim={"lr": 3e-3},
               train={"max_steps": 15}, preference={"loss": "simpo"}, eval={"num_generate": 0})  # fmt: skip
    run = tunelab.train(r, show_progress=False)
    assert run.info["preference"]["beta"] == 2.0 and run.info["preference"]["gamma"] == 1.0
    assert not (run.dir / "reference_logps.npz").exists() and "reference" not in run.info
    assert "dpo_reward_accuracy" not in run.metrics["test"]
    assert run.metrics["test"]["reward_accuracy"] > run.metrics["base"]["test"]["reward_accuracy"]


def test_orpo_and_ipo_train(tiny_llama, preferences, tmp_path):
    for loss in ("orpo", "ipo"):
        r = recipe(tiny_llama, preferences, tmp_path / loss, train={"max_steps": 3},
                   preference={"loss": loss}, eval={"num_generate": 0, "compare_base": False})  # fmt: skip
        run = tunelab.train(r, show_progress=False)
        assert np.isfinite(losses(run.dir)).all() and run.metrics["test"]["reward_accuracy"] >= 0


def test_a_resumed_run_continues_with_the_same_losses_and_reads_its_reference_back(tiny_llama, preferences, tmp_path):
    from tunelab.training.fit import Interrupted

    def make(out):
        return recipe(tiny_llama, preferences, out, method={"name": "lora", "r": 4}, optim={"lr": 1e-2},
                      train={"max_steps": 6, "eval_every": 2, "log_every": 1},
                      eval={"compare_base": False, "num_generate": 0})  # fmt: skip

    full = tunelab.train(make(tmp_path / "full"), show_progress=False)

    def kill_at_3(step):
        if step == 3:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(Interrupted):
        tunelab.train(make(tmp_path / "cut"), show_progress=False, on_step=kill_at_3)
    resumed = tunelab.train(resume=tmp_path / "cut", show_progress=False)
    assert resumed.info["reference"]["read_back"] is True
    np.testing.assert_allclose(losses(resumed.dir), losses(full.dir), rtol=0, atol=1e-6)
    assert resumed.metrics["test"]["loss"] == pytest.approx(full.metrics["test"]["loss"], abs=1e-6)


def test_frozen_is_refused_and_pairs_that_cannot_fit_are_an_error(tiny_llama, preferences, tmp_path):
    with pytest.raises(TunelabError, match="frozen is not offered"):
        tunelab.train(recipe(tiny_llama, preferences, tmp_path / "a", method={"name": "frozen",
                                                                               "unfreeze_top_layers": 1}),
                      show_progress=False)  # fmt: skip
    with pytest.raises(TunelabError, match="no training pair left"):
        tunelab.train(recipe(tiny_llama, preferences, tmp_path / "b", data={"max_length": 8}), show_progress=False)


def test_a_preference_run_starts_from_an_sft_run(tiny_llama, preferences, tmp_path):
    """The README's second example: sft first, then preference tuning from the sft run's merged model/ (its chat
    template and weights; the reference is that model, not the one sft started from)."""
    from tests.conftest import make_chats

    chats = write_jsonl(tmp_path / "chats.jsonl", make_chats(40))
    sft = tunelab.train(tiny_lm_recipe(tiny_llama, chats, tmp_path / "sft", method={"name": "lora", "r": 4},
                                       optim={"lr": 1e-2}, train={"max_steps": 4},
                                       eval={"num_generate": 0, "compare_base": False}),
                        show_progress=False)  # fmt: skip
    r = recipe(sft.dir / "model", preferences, tmp_path / "pref", train={"max_steps": 2},
               eval={"num_generate": 0})  # fmt: skip
    run = tunelab.train(r, show_progress=False)
    assert run.info["base_model"]["name"] == str(sft.dir / "model")
    # the base row is the sft run's model: its test loss on the pairs' chosen answers differs from the random start's
    start = tunelab.train(recipe(tiny_llama, preferences, tmp_path / "raw", train={"max_steps": 2},
                                 eval={"num_generate": 0}), show_progress=False)  # fmt: skip
    assert run.metrics["base"]["test"]["chosen_logp"] != pytest.approx(start.metrics["base"]["test"]["chosen_logp"])
    assert tunelab.load(run.dir).chat
