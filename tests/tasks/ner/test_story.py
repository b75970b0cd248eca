"""NER end to end on the tiny random model.

Run directory, equivalences, LoRA/frozen heads, predictor spans, CLI, recipes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import tunelab
from tests.conftest import make_sentences, tiny_recipe, write_jsonl


@pytest.fixture
def ner_files(tmp_path) -> dict:
    rows = make_sentences(150)
    return {
        "train": write_jsonl(tmp_path / "train.jsonl", rows[:110]),
        "validation": write_jsonl(tmp_path / "val.jsonl", rows[110:130]),
        "test": write_jsonl(tmp_path / "test.jsonl", rows[130:]),
    }


def ner_recipe(tiny_bert, files: dict, out: Path, **sections) -> dict:
    recipe = tiny_recipe(tiny_bert, files["train"], out, task="ner", **sections)
    recipe["data"].update({"validation": str(files["validation"]), "test": str(files["test"])})
    return recipe


def losses(run_dir):
    return [r["loss"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


def test_run_directory_and_predictor(tiny_bert, ner_files, tmp_path):
    run = tunelab.train(ner_recipe(tiny_bert, ner_files, tmp_path / "run"), show_progress=False)
    d = run.dir
    for name in (
        "run.json",
        "config.yaml",
        "metrics.json",
        "curves.png",
        "confusion_matrix.png",
        "per_type.md",
        "README.md",
        "model/config.json",
    ):
        assert (d / name).exists(), name
    info = run.info
    assert (
        info["task"] == "ner"
        and info["entity_types"] == ["geo-loc", "person"]
        and info["pipeline_tag"] == "token-classification"
    )
    assert info["labels"] == {"0": "O", "1": "B-geo-loc", "2": "I-geo-loc", "3": "B-person", "4": "I-person"}
    test = run.metrics["test"]
    assert test["n"] == 20 and test["entities"] == 40 and set(test["per_type"]) == {"geo-loc", "person"}
    assert "| person |" in (d / "per_type.md").read_text() and "Per entity type" in (d / "README.md").read_text()
    recorded = (d / "config.yaml").read_text()  # the fields of ner and of its method only
    assert "tag_scheme: IOB2" in recorded and "augment" not in recorded and "packing" not in recorded
    assert "label_column" not in recorded and "unfreeze_top_layers" not in recorded

    tagger = tunelab.load(d)
    again = tagger.evaluate(ner_files["test"])  # the same evaluation code as training
    for key in ("f1", "precision", "recall", "accuracy", "entities", "predicted_entities", "n"):
        assert again[key] == pytest.approx(test[key]), key
    assert again["loss"] == pytest.approx(test["loss"], rel=1e-5)
    for text, found in zip(
        ["Alice Smith met Bob in Zürich!", ""], tagger.predict(["Alice Smith met Bob in Zürich!", ""])
    ):
        assert all(text[s["start"] : s["end"]] == s["text"] and 0 <= s["score"] <= 1 for s in found)
    # the exported model loads with plain transformers and gives the predictor's logits
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    plain = AutoModelForTokenClassification.from_pretrained(d / "model").eval()
    tok = AutoTokenizer.from_pretrained(d / "model")
    with torch.no_grad():
        enc = tok(["Alice", "met", "Bob"], is_split_into_words=True, return_tensors="pt")
        np.testing.assert_allclose(plain(**enc).logits.numpy(), tagger.model(**enc).logits.numpy(), atol=1e-6)


def test_gradient_accumulation_is_equivalent(tiny_bert, ner_files, tmp_path):
    """The loss is normalised by the labelled words of the whole step, so accumulation changes nothing."""
    a = tunelab.train(ner_recipe(tiny_bert, ner_files, tmp_path / "a", train={"max_steps": 4}), show_progress=False)
    b = tunelab.train(
        ner_recipe(tiny_bert, ner_files, tmp_path / "b", train={"max_steps": 4, "micro_batch_size": 2}),
        show_progress=False,
    )
    np.testing.assert_allclose(losses(a.dir), losses(b.dir), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["lora", "frozen"])
def test_parameter_efficient_methods_save_the_head(tiny_bert, ner_files, tmp_path, method):
    run = tunelab.train(
        ner_recipe(tiny_bert, ner_files, tmp_path / "run", method={"name": method}, train={"max_steps": 4}),
        show_progress=False,
    )
    assert 0 < run.info["trainable_params"] < run.info["total_params"]
    texts = ["Dana Lee and Bob flew to New York today!", "a big game in Lagos"]
    first, second = tunelab.load(run.dir), tunelab.load(run.dir)
    assert first.predict(texts) == second.predict(texts)
    if method == "lora":  # base + saved adapter (head included) == the merged model/ the predictor uses
        from peft import PeftModel
        from transformers import AutoModelForTokenClassification

        base = AutoModelForTokenClassification.from_pretrained(tiny_bert, num_labels=5)
        with_adapter = PeftModel.from_pretrained(base, run.dir / "adapter").eval()
        enc = first.tokenizer(["Dana", "Lee", "flew", "to", "Paris"], is_split_into_words=True, return_tensors="pt")
        with torch.no_grad():
            np.testing.assert_allclose(with_adapter(**enc).logits.numpy(), first.model(**enc).logits.numpy(), atol=1e-5)
        assert not any("lora" in n for n, _ in first.model.named_parameters())


def test_spans_have_character_offsets_into_the_original_text(tiny_bert, ner_files, tmp_path):
    """Text -> words -> (tags) -> spans: offsets into the original text, with punctuation and unicode."""
    run = tunelab.train(ner_recipe(tiny_bert, ner_files, tmp_path / "run", train={"max_steps": 1}), show_progress=False)
    tagger = tunelab.load(run.dir)
    text = "RT @Émile: Carlos Díaz's café in Zürich—wow!!  New York (東京)…"
    words = [w for w, _, _ in tagger.words(text)]
    gold = {
        "Carlos": "B-person",
        "Díaz": "I-person",
        "Zürich": "B-geo-loc",
        "New": "B-geo-loc",
        "York": "I-geo-loc",
        "東京": "B-geo-loc",
    }
    oracle = [gold.get(w, "O") for w in words]
    tagger.tag_words = lambda sentences, batch_size=64: [(oracle, np.linspace(0.5, 1.0, len(oracle)))]
    found = tagger.predict(text)[0]
    assert [(s["text"], s["type"]) for s in found] == [
        ("Carlos Díaz", "person"),
        ("Zürich", "geo-loc"),
        ("New York", "geo-loc"),
        ("東京", "geo-loc"),
    ]
    for s in found:
        assert text[s["start"] : s["end"]] == s["text"]
    assert found[0]["start"] == text.index("Carlos") and found[2]["end"] == text.index(" (")


def test_cli_predict_prints_and_writes_entities(tiny_bert, ner_files, tmp_path):
    from typer.testing import CliRunner

    from tunelab.cli import app

    run = tunelab.train(ner_recipe(tiny_bert, ner_files, tmp_path / "run", train={"max_steps": 1}), show_progress=False)
    result = CliRunner().invoke(app, ["predict", str(run.dir), "Bob met Alice Smith in Paris"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout.strip().splitlines()[0])
    assert row["text"] == "Bob met Alice Smith in Paris" and isinstance(row["entities"], list)
    (tmp_path / "in.txt").write_text("Bob met Alice Smith in Paris\nWe saw Lagos!\n", encoding="utf-8")
    result = CliRunner().invoke(
        app, ["predict", str(run.dir), "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "out.jsonl")]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["text"] for r in rows] == ["Bob met Alice Smith in Paris", "We saw Lagos!"] and all(
        "entities" in r for r in rows
    )


def test_interrupt_and_resume_reproduce_the_uninterrupted_run(tiny_bert, ner_files, tmp_path):
    import signal

    from tunelab.training.fit import Interrupted

    recipe = lambda out: ner_recipe(  # noqa: E731
        tiny_bert, ner_files, out, model={"dropout": 0.1}, train={"max_steps": 6, "eval_every": 2}
    )
    full = tunelab.train(recipe(tmp_path / "full"), show_progress=False)

    def kill_at_3(step):
        if step == 3:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(Interrupted):
        tunelab.train(recipe(tmp_path / "cut"), show_progress=False, on_step=kill_at_3)
    resumed = tunelab.train(resume=tmp_path / "cut", show_progress=False)
    np.testing.assert_allclose(losses(resumed.dir), losses(full.dir), rtol=0, atol=1e-6)
    assert (
        resumed.metrics["test"]["f1"] == full.metrics["test"]["f1"]
        and resumed.metrics["best_step"] == full.metrics["best_step"]
    )
