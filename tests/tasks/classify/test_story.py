"""Classification, multilabel and regression end to end on a tiny random model: outputs, equivalences, resume, LoRA."""

from __future__ import annotations

import csv
import json
import random
import signal

import numpy as np
import pytest
import torch
import yaml

import tunelab
from tests.conftest import tiny_recipe, write_csv

pytestmark = pytest.mark.slow  # 15 s or more: scheduled first (tests/conftest.py)


def losses(run_dir):
    return [r["loss"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


def test_run_directory_contract(tiny_bert, sentiment_csv, tmp_path):
    run = tunelab.train(tiny_recipe(tiny_bert, sentiment_csv, tmp_path / "run"), show_progress=False)
    d = run.dir
    for name in (
        "run.json",
        "config.yaml",
        "metrics.json",
        "metrics.jsonl",
        "curves.png",
        "confusion_matrix.png",
        "README.md",
        "model/config.json",
        "model/model.safetensors",
    ):
        assert (d / name).exists(), name
    info = json.loads((d / "run.json").read_text())
    assert info["status"] == "completed" and info["schema_version"] == 1
    assert info["labels"] == {"0": "neg", "1": "pos"}
    assert info["data"]["train"] + info["data"]["validation"] + info["data"]["test"] == 120
    metrics = json.loads((d / "metrics.json").read_text())
    assert metrics["test"]["n"] == info["data"]["test"]
    # the plain model loads without tunelab and agrees with the predictor
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(d / "model"))
    clf = tunelab.load(d)
    text = "a wonderful lovely film"
    assert pipe(text)[0]["label"] == clf.predict([text])[0]["label"]
    assert abs(pipe(text)[0]["score"] - clf.predict([text])[0]["score"]) < 1e-4
    # config.yaml: the fields of its task and method only (no other family's, no LoRA rank for a full fine-tune)
    recorded = yaml.safe_load((d / "config.yaml").read_text())
    assert "augment" in recorded["data"] and not {"tag_scheme", "packing", "label_separator"} & set(recorded["data"])
    assert set(recorded["method"]) == {"name"} and "calibrate" in recorded["eval"]
    assert "threshold" not in recorded["eval"]  # multilabel's


def test_a_field_of_another_family_warns_and_the_run_trains(tiny_bert, sentiment_csv, tmp_path):
    from tunelab.config import RecipeWarning

    recipe = tiny_recipe(tiny_bert, sentiment_csv, tmp_path / "run", data={"tag_scheme": "BIOES"})
    with pytest.warns(RecipeWarning, match=r"data.tag_scheme is a field of ner, not of task classification: ignored"):
        run = tunelab.train(recipe, show_progress=False)
    assert run.info["status"] == "completed" and "tag_scheme" not in (run.dir / "config.yaml").read_text()


def test_existing_output_dir_is_refused(tiny_bert, sentiment_csv, tmp_path):
    recipe = tiny_recipe(tiny_bert, sentiment_csv, tmp_path / "run")
    tunelab.train(recipe, show_progress=False)
    with pytest.raises(tunelab.errors.TunelabError, match="--overwrite"):
        tunelab.train(recipe, show_progress=False)
    tunelab.train(recipe, overwrite=True, show_progress=False)
    assert not (tmp_path / "run.new").exists()


def test_num_threads_applies_to_the_run_only(tiny_bert, sentiment_csv, tmp_path):
    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2
    seen = []
    recipe = tiny_recipe(tiny_bert, sentiment_csv, tmp_path / "run", train={"num_threads": wanted, "max_steps": 2})
    tunelab.train(recipe, show_progress=False, on_step=lambda step: seen.append(torch.get_num_threads()))
    assert seen and set(seen) == {wanted}
    assert torch.get_num_threads() == before


def test_gradient_accumulation_is_equivalent(tiny_bert, sentiment_csv, tmp_path):
    a = tunelab.train(tiny_recipe(tiny_bert, sentiment_csv, tmp_path / "a"), show_progress=False)
    b = tunelab.train(
        tiny_recipe(tiny_bert, sentiment_csv, tmp_path / "b", train={"micro_batch_size": 2}), show_progress=False
    )
    np.testing.assert_allclose(losses(a.dir), losses(b.dir), rtol=1e-5, atol=1e-6)


def test_same_seed_same_metrics(tiny_bert, sentiment_csv, tmp_path):
    a = tunelab.train(
        tiny_recipe(tiny_bert, sentiment_csv, tmp_path / "a", model={"dropout": 0.1}), show_progress=False
    )
    b = tunelab.train(
        tiny_recipe(tiny_bert, sentiment_csv, tmp_path / "b", model={"dropout": 0.1}), show_progress=False
    )
    assert losses(a.dir) == losses(b.dir)
    assert a.metrics["test"] == b.metrics["test"]


def test_interrupt_and_resume_reproduce_the_uninterrupted_run(tiny_bert, sentiment_csv, tmp_path):
    recipe = lambda out: tiny_recipe(  # noqa: E731
        tiny_bert, sentiment_csv, out, model={"dropout": 0.1}, train={"max_steps": 10, "eval_every": 3}
    )
    full = tunelab.train(recipe(tmp_path / "full"), show_progress=False)

    def kill_at_5(step):
        if step == 5:
            signal.raise_signal(signal.SIGINT)

    from tunelab.training.fit import Interrupted

    with pytest.raises(Interrupted):
        tunelab.train(recipe(tmp_path / "cut"), show_progress=False, on_step=kill_at_5)
    assert json.loads((tmp_path / "cut" / "run.json").read_text())["status"] == "interrupted"
    assert len(losses(tmp_path / "cut")) == 5
    resumed = tunelab.train(resume=tmp_path / "cut", show_progress=False)
    np.testing.assert_allclose(losses(resumed.dir), losses(full.dir), rtol=0, atol=1e-6)
    assert resumed.metrics["test"]["accuracy"] == full.metrics["test"]["accuracy"]


def test_resume_refuses_changed_data(tiny_bert, sentiment_csv, tmp_path):
    def kill_at_2(step):
        if step == 2:
            signal.raise_signal(signal.SIGINT)

    from tunelab.training.fit import Interrupted

    with pytest.raises(Interrupted):
        tunelab.train(tiny_recipe(tiny_bert, sentiment_csv, tmp_path / "cut"), show_progress=False, on_step=kill_at_2)
    sentiment_csv.write_text(sentiment_csv.read_text().replace("great", "grand"))
    with pytest.raises(tunelab.errors.TunelabError, match="data changed"):
        tunelab.train(resume=tmp_path / "cut", show_progress=False)


@pytest.mark.parametrize("method", ["lora", "frozen"])
def test_parameter_efficient_methods_save_the_head(tiny_bert, sentiment_csv, tmp_path, method):
    run = tunelab.train(
        tiny_recipe(tiny_bert, sentiment_csv, tmp_path / "run", method={"name": method}), show_progress=False
    )
    info = run.info
    assert 0 < info["trainable_params"] < info["total_params"]
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(run.dir / "model")
    batch = tok(["a lovely superb film", "dull and awful"], return_tensors="pt", padding=True)
    plain = AutoModelForSequenceClassification.from_pretrained(run.dir / "model").eval()
    with torch.no_grad():
        merged_logits = plain(**batch).logits
    assert not any("lora" in n for n, _ in plain.named_parameters())
    # the predictor reads the same files
    np.testing.assert_allclose(
        tunelab.load(run.dir).logits(["a lovely superb film", "dull and awful"]), merged_logits.numpy(), atol=1e-5
    )
    if method == "lora":  # base + adapter (head included) == merged model
        from peft import PeftModel

        base = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
        with_adapter = PeftModel.from_pretrained(base, run.dir / "adapter").eval()
        with torch.no_grad():
            np.testing.assert_allclose(with_adapter(**batch).logits.numpy(), merged_logits.numpy(), atol=1e-5)


def test_compile_option_trains_the_same(tiny_bert, sentiment_csv, tmp_path, monkeypatch):
    """train.compile: true (torch.compile of the training forward) changes speed only; saving still works.

    Compiled with the aot_eager backend: dynamo captures the forward and AOT autograd the backward, as with inductor,
    but no C++ is generated (inductor's code generation took ~50 s of this test on 2 cores; the benchmark arm
    tunelab_compile runs inductor itself)."""
    import functools

    recipe = lambda out, compile: tiny_recipe(tiny_bert, sentiment_csv, out, train={"max_steps": 3, "compile": compile})  # noqa: E731
    from torch._dynamo.utils import counters

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    eager = tunelab.train(recipe(tmp_path / "eager", False), show_progress=False)
    counters.clear()
    compiled = tunelab.train(recipe(tmp_path / "compiled", True), show_progress=False)
    assert counters["stats"]["unique_graphs"] > 0  # the forward really went through dynamo
    np.testing.assert_allclose(losses(compiled.dir), losses(eager.dir), rtol=1e-4, atol=1e-5)
    assert (compiled.dir / "model" / "model.safetensors").exists()


def test_multilabel_end_to_end(tiny_bert, tmp_path):
    rng = random.Random(0)
    rows = []
    for i in range(80):
        tags = sorted(rng.sample(["sport", "politics", "tech"], rng.randint(1, 2)))
        rows.append({"text": " ".join(tags) + f" news item {i}", "label": "|".join(tags)})
    data = write_csv(tmp_path / "ml.csv", rows)
    run = tunelab.train(tiny_recipe(tiny_bert, data, tmp_path / "run", task="multilabel"), show_progress=False)
    assert set(run.metrics["test"]) >= {"f1_samples", "f1_micro", "f1_macro", "subset_accuracy"}
    info = json.loads((run.dir / "run.json").read_text())
    assert info["labels"] == {"0": "politics", "1": "sport", "2": "tech"}
    config = json.loads((run.dir / "model" / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    pred = tunelab.load(run.dir).predict(["sport tech news"])[0]
    assert set(pred["scores"]) == {"politics", "sport", "tech"} and isinstance(pred["labels"], list)
    # error analysis: every test example (fewer than 200), worst first; misses and false alarms per label
    errors = list(csv.DictReader(open(run.dir / "errors.csv", encoding="utf-8")))
    assert len(errors) == run.metrics["test"]["n"]
    assert [float(e["loss"]) for e in errors] == sorted((float(e["loss"]) for e in errors), reverse=True)
    per_class = run.metrics["test"]["per_class"]
    missed = {k: round(m["support"] * (1 - m["recall"])) for k, m in per_class.items()}
    md = (run.dir / "confusions.md").read_text()
    assert "Most-missed labels" in md and "Most-spurious labels" in md
    for label, n in missed.items():
        assert (f"| {label} | {n} |" in md) == (n > 0)
    assert sum(b["n"] for b in run.metrics["by_length"]) == run.metrics["test"]["n"]


def test_regression_end_to_end(tiny_bert, tmp_path):
    rng = random.Random(1)
    rows = [
        {"text": f"review {i}: {' '.join(['good'] * s)}", "label": s + rng.random()}
        for i, s in enumerate(rng.choices(range(5), k=80))
    ]
    data = write_csv(tmp_path / "reg.csv", rows)
    run = tunelab.train(tiny_recipe(tiny_bert, data, tmp_path / "run", task="regression"), show_progress=False)
    assert set(run.metrics["test"]) >= {"mse", "mae", "r2", "pearson"}
    assert "score" in tunelab.load(run.dir).predict("rated 3 stars good good good")[0]
    errors = list(csv.DictReader(open(run.dir / "errors.csv", encoding="utf-8")))  # the largest residuals first
    squared = [(float(e["prediction"]) - float(e["label"])) ** 2 for e in errors]
    assert [float(e["loss"]) for e in errors] == pytest.approx(squared, abs=1e-3)
    assert squared == sorted(squared, reverse=True) and "Largest residuals" in (run.dir / "confusions.md").read_text()
    (bucket,) = run.metrics["by_length"]  # every text is short: one bucket, its MSE the test MSE
    assert bucket["mse"] == pytest.approx(run.metrics["test"]["mse"], rel=1e-4)
    ev = tunelab.evaluate(run.dir, data)
    assert ev["n"] == 80 and ev["mse"] >= 0
