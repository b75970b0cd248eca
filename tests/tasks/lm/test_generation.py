"""sft's generation metrics come from tunelab.metrics.text (0–100, SQuAD normalisation); older runs' 0–1 rows render."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT
from tunelab.metrics.text import text_metrics
from tunelab.tasks.lm.generation import base_vs_tuned, generation_metrics

PREDICTIONS = ["Paris.", "I am a robot", "The answer is Four!", "Nope"]
REFERENCES = ["paris", "I am a computer", "four", "William Shakespeare."]


def test_sft_generation_metrics_are_the_shared_module_s():
    g = generation_metrics(PREDICTIONS, REFERENCES)
    shared = text_metrics(PREDICTIONS, REFERENCES, which=("em", "f1", "rougeL", "contains"))
    assert g == shared | {"generated": 4}
    assert g["exact_match"] == pytest.approx(25.0) and g["contains_answer"] == pytest.approx(50.0)
    # token F1 by hand: 1; "i am robot" vs "i am computer" 2/3; "answer is four" vs "four" 2 * 1/3 / (4/3) = 1/2; 0
    assert g["token_f1"] == pytest.approx(100 * (1 + 2 / 3 + 1 / 2 + 0) / 4)


def test_sft_generation_metrics_report_answer_lengths_and_the_share_cut_at_the_bound():
    g = generation_metrics(PREDICTIONS, REFERENCES, lengths=[2, 4, 8, 8], max_new_tokens=8)
    assert g["gen_length"] == pytest.approx(5.5) and g["hit_max"] == pytest.approx(50.0)
    rows = base_vs_tuned({"test": {"perplexity": 4.0}, "generation": g})
    assert [r[0].split(" (")[0] for r in rows[-2:]] == ["gen_length", "hit_max"] and rows[-1][1:] == (None, 50.0)


def test_base_vs_tuned_rows_new_and_old_runs():
    g = generation_metrics(PREDICTIONS, REFERENCES)
    rows = base_vs_tuned({"test": {"perplexity": 4.0}, "generation": g, "base": {"generation": g}})
    assert [r[0].split(" (")[0] for r in rows[1:]] == ["exact_match", "token_f1", "rougeL", "contains_answer"]
    assert all("0–100, 4 held-out prompts" in r[0] and r[1] == r[2] for r in rows[1:])
    # a v0.1.0 run: exact_match and contains_answer as 0–1 fractions, no token_f1 or rougeL; shown as they were
    old = json.loads((ROOT / "tests" / "fixtures" / "runs" / "v0.1.0" / "sft" / "metrics.json").read_text())
    rows = base_vs_tuned(old)
    assert [r[0] for r in rows[1:]] == ["exact_match (2 held-out prompts)", "contains_answer (2 held-out prompts)"]
    assert [r[2] for r in rows[1:]] == [old["generation"]["exact_match"], old["generation"]["contains_answer"]]


def test_greedy_replies_equal_transformers_generate_prompt_by_prompt(smollm2_tokenizer_dir, tmp_path):
    """Generator.generate's greedy path (continuous batching, shared head, models/decode.greedy) gives each prompt the
    reply model.generate gives it alone (fp32), for a chat run and for plain text continuation."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tests.conftest import save_tiny_llama
    from tunelab.tasks.lm.predictor import Generator

    (tmp_path / "llama").mkdir()
    path = save_tiny_llama(tmp_path / "llama", smollm2_tokenizer_dir, initializer_range=0.3)  # varied tokens
    model, tokenizer = AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    prompts = ["What is H2O?", "Who wrote Hamlet, and when did he write it?", "Hi", "Name three red fruits please."]
    for chat in (True, False):
        gen = Generator.wrap(model, tokenizer, chat=chat)
        got = gen.generate(prompts, max_new_tokens=6, batch_size=2)
        for prompt, reply in zip(prompts, got):
            enc = tokenizer(gen.render(prompt), return_tensors="pt", add_special_tokens=not chat)
            with torch.no_grad():
                out = model.generate(**enc, max_new_tokens=6, do_sample=False, eos_token_id=tokenizer.eos_token_id,
                                     pad_token_id=tokenizer.pad_token_id)  # fmt: skip
            assert reply == tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True).strip()
        assert len(set(got)) > 1  # the model says different things: the comparison above could fail
