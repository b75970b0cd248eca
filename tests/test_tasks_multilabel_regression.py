"""Multilabel (sigmoid + BCE + threshold) and regression (MSE) end to end on a tiny model."""

from __future__ import annotations

import json
import random

import tunelab
from tests.conftest import tiny_recipe, write_csv


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
    ev = tunelab.evaluate(run.dir, data)
    assert ev["n"] == 80 and ev["mse"] >= 0
