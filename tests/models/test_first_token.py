"""The last-layer shortcut of sequence classifiers changes speed only: same logits, same training."""

from __future__ import annotations

import json

import numpy as np
import torch

import tunelab
from tests.conftest import tiny_recipe
from tunelab.models.first_token import first_token_only


def test_same_logits_with_padding(tiny_bert):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=3).eval()
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    batch = tok(
        ["a short one", "a much longer sentence with many more words in it than the first"],
        return_tensors="pt",
        padding=True,
    )
    with torch.no_grad():
        before = model(**batch).logits
        assert first_token_only(model)
        after = model(**batch).logits
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)


def test_models_that_do_not_pool_the_first_token_are_left_alone():
    from transformers import GPT2Config, GPT2ForSequenceClassification

    model = GPT2ForSequenceClassification(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=100, pad_token_id=0))
    assert not first_token_only(model)
    assert "forward" not in model.transformer.h[-1].__dict__


def test_training_is_unchanged(tiny_bert, sentiment_csv, tmp_path, monkeypatch):
    fast = tunelab.train(tiny_recipe(tiny_bert, sentiment_csv, tmp_path / "fast"), show_progress=False)
    assert fast.info["preprocessing"]["first_token_only_last_layer"] is True
    monkeypatch.setattr("tunelab.models.fast_paths.first_token_only", lambda model: False)
    full = tunelab.train(tiny_recipe(tiny_bert, sentiment_csv, tmp_path / "full"), show_progress=False)
    losses = lambda run: [  # noqa: E731
        r["loss"] for r in map(json.loads, (run.dir / "metrics.jsonl").read_text().splitlines()) if "loss" in r
    ]
    np.testing.assert_allclose(losses(fast), losses(full), rtol=1e-5, atol=1e-6)
    assert fast.metrics["test"]["accuracy"] == full.metrics["test"]["accuracy"]
