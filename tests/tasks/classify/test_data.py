"""Sequence-level data: label spaces, unseen labels, multilabel and regression labels, missing splits."""

from __future__ import annotations

import pytest

import tunelab
from tests.conftest import tiny_recipe
from tunelab.config import load_config
from tunelab.errors import TunelabError
from tunelab.tasks.classify.data import build_label_space, read_records


def _cfg(tmp_path, **data):
    return load_config({"data": data})


def test_unseen_validation_label_is_an_error(tmp_path):
    (tmp_path / "t.csv").write_text("text,label\na,x\nb,y\nc,x\n")
    (tmp_path / "v.csv").write_text("text,label\nd,x\ne,z\n")
    cfg = _cfg(
        tmp_path,
        train=str(tmp_path / "t.csv"),
        validation=str(tmp_path / "v.csv"),
        test=str(tmp_path / "t.csv"),
        dedupe=False,
    )
    with pytest.raises(TunelabError, match=r"v.csv, line 3: label 'z' in the validation data never occurs in training"):
        build_label_space(read_records(cfg), "classification")


def test_multilabel_and_regression_labels(tmp_path):
    (tmp_path / "m.csv").write_text("text,label\na,x|y\nb,y\nc,\nd,x\n")
    cfg = load_config(
        {"task": "multilabel", "data": {"train": str(tmp_path / "m.csv"), "validation_fraction": 0, "test_fraction": 0}}
    )
    splits = read_records(cfg)
    space = build_label_space(splits, "multilabel")
    assert space.names == ["x", "y"] and space.encode(["x", "y"]) == [1.0, 1.0] and space.encode([]) == [0.0, 0.0]
    (tmp_path / "r.csv").write_text("text,label\na,1.5\nb,oops\n")
    with pytest.raises(TunelabError, match=r"r.csv, line 3: label 'oops' .* not a finite number"):
        read_records(load_config({"task": "regression", "data": {"train": str(tmp_path / "r.csv")}}))


def test_no_validation_and_no_test_split_trains(tiny_bert, sentiment_csv, tmp_path):
    """validation_fraction 0 and test_fraction 0: empty splits are skipped, not tokenised into a crash."""
    recipe = tiny_recipe(
        tiny_bert, sentiment_csv, tmp_path / "run", data={"validation_fraction": 0.0, "test_fraction": 0.0}
    )
    run = tunelab.train(recipe, show_progress=False)
    assert run.info["data"]["validation"] == 0 and run.info["data"]["test"] == 0
    assert run.metrics["steps"] == 6 and run.metrics["test"] == {}
