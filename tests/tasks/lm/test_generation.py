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
