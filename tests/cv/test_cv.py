"""`tunelab train --folds K`: K ordinary runs, the held-out fold never seen before it is predicted, oof.jsonl from the
fold that held each example out, cv.json, and a killed cross-validation continued by the same command."""

from __future__ import annotations

import json
import shutil

import pytest

import tunelab
from tests.conftest import tiny_recipe
from tunelab.errors import TunelabError


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_three_folds_hold_each_example_out_once(tiny_bert, sentiment_csv, tmp_path):
    out = tmp_path / "cv"
    recipe = tiny_recipe(tiny_bert, sentiment_csv, out, train={"folds": 3, "max_steps": 4, "eval_every": 2})
    cv = tunelab.train(recipe, show_progress=False)
    parent = json.loads((out / "run.json").read_text())
    assert (parent["kind"], parent["status"], parent["folds"]) == ("cv", "completed", 3)

    # the fold data: held-out folds disjoint and covering; neither the fold's train nor its validation holds them
    texts = lambda path: {r["text"] for r in read_jsonl(path)}  # noqa: E731
    held = [texts(out / "data" / f"fold-{j}" / "held_out.jsonl") for j in (1, 2, 3)]
    test = texts(out / "data" / "test.jsonl")
    assert sum(map(len, held)) == len(set().union(*held)) == 108 and not test & set().union(*held)
    for j in (1, 2, 3):
        fold = out / "data" / f"fold-{j}"
        seen = texts(fold / "train.jsonl") | texts(fold / "validation.jsonl")
        assert not seen & held[j - 1] and seen | held[j - 1] == set().union(*held)
        assert texts(fold / "validation.jsonl")  # an inner validation, carved from the rest
        info = json.loads((out / "folds" / str(j) / "run.json").read_text())
        assert (info["kind"], info["parent"], info["data"]["test"]) == ("trial", str(out), len(held[j - 1]))

    # oof.jsonl: every example once, predicted by the fold model that held it out
    oof = read_jsonl(out / "oof.jsonl")
    assert [r["index"] for r in oof] == list(range(108))
    for r in oof:
        assert r["text"] in held[r["fold"] - 1] and r["source"] == str(sentiment_csv) and r["line"] >= 2
    for j in (1, 2, 3):
        mine = [r for r in oof if r["fold"] == j][:3]
        again = tunelab.load(out / "folds" / str(j)).predict([r["text"] for r in mine])
        for r, p in zip(mine, again):
            assert r["probs"] == pytest.approx(p["scores"], abs=1e-6)
    hits = [max(r["probs"], key=r["probs"].get) == r["label"] for r in oof]
    assert cv.metrics["oof"]["accuracy"] == pytest.approx(sum(hits) / 108)

    # cv.json: the folds and their mean
    summary = json.loads((out / "cv.json").read_text())
    for section in ("validation", "held_out", "test"):
        values = [f[section]["accuracy"] for f in summary["folds"]]
        assert summary["mean"][section]["accuracy"] == pytest.approx(sum(values) / 3)
    assert "3-fold cross-validation" in (out / "README.md").read_text()
    with pytest.raises(TunelabError, match="a cross-validation, not one model"):
        tunelab.load(out)

    # killed part-way: the same command keeps the finished folds and trains the rest
    shutil.rmtree(out / "folds" / "2")
    kept = (out / "folds" / "1" / "model" / "model.safetensors").stat().st_mtime_ns
    again = tunelab.train(recipe, show_progress=False)
    assert (out / "folds" / "1" / "model" / "model.safetensors").stat().st_mtime_ns == kept
    assert (out / "folds" / "2" / "model").is_dir() and again.metrics["k"] == 3
    assert again.metrics["folds"][0] == summary["folds"][0]
    # ... and another recipe in the same directory is refused
    with pytest.raises(TunelabError, match="another cross-validation"):
        tunelab.train({**recipe, "optim": {"lr": 5e-4, "warmup_steps": 0}}, show_progress=False)


def test_cross_validation_refuses_what_it_cannot_do(tiny_bert, sentiment_csv, tmp_path):
    with pytest.raises(TunelabError, match="not for task 'ner'"):
        tunelab.train({"task": "ner", "train": {"folds": 3, "output_dir": str(tmp_path / "x")}}, show_progress=False)
    lonely = tmp_path / "lonely.csv"
    lonely.write_text(sentiment_csv.read_text() + "a single odd one,odd\n")
    recipe = tiny_recipe(tiny_bert, lonely, tmp_path / "cv", train={"folds": 3}, data={"test_fraction": 0.0})
    with pytest.raises(TunelabError, match="label 'odd' has a single example"):
        tunelab.train(recipe, show_progress=False)


def test_the_cli_trains_the_folds_and_prints_their_table(tiny_bert, sentiment_csv, tmp_path, monkeypatch, capsys):
    import sys

    import yaml

    from tunelab.cli import main

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(tiny_bert, sentiment_csv, None, train={"max_steps": 2})))
    argv = ["tunelab", "train", str(path), "--folds", "2", "--output-dir", str(tmp_path / "cv"), "--quiet"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 0
    printed = capsys.readouterr().out
    assert "2-fold cross-validation" in printed and "held_out accuracy" in printed and "oof.jsonl" in printed
    assert sorted(p.name for p in (tmp_path / "cv" / "folds").iterdir()) == ["1", "2"]
