"""The run directory contract: run.json's kind, parent and status words; config.yaml read leniently by predictors."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

import tunelab
from tests.conftest import ROOT, tiny_recipe
from tunelab.runs.rundir import KINDS, STATUSES, RunDir

V010 = ROOT / "tests" / "fixtures" / "runs" / "v0.1.0"


def test_a_training_run_says_its_kind_parent_and_status(tiny_bert, sentiment_csv, tmp_path):
    run = tunelab.train(
        tiny_recipe(tiny_bert, sentiment_csv, tmp_path / "run", train={"max_steps": 2}), show_progress=False
    )
    info = json.loads((run.dir / "run.json").read_text())
    assert info["kind"] == "train" and info["parent"] is None and info["status"] in STATUSES
    assert set(KINDS) >= {"train", "cv", "ensemble", "study", "trial"} and "pruned" in STATUSES
    with pytest.raises(ValueError, match="status 'done'"):
        RunDir(run.dir).update_info(status="done")


def test_a_renamed_or_removed_recipe_field_does_not_break_an_old_run(tmp_path):
    """run.json is the contract: predictors read config.yaml leniently (unknown or invalid fields are dropped)."""
    old = tmp_path / "classification"
    shutil.copytree(V010 / "classification", old)
    raw = yaml.safe_load((old / "config.yaml").read_text())
    raw["data"]["text_colum_renamed"] = "text"  # a field a later version renamed
    raw["train"]["precision"] = "fp8"  # a value a later version no longer takes
    raw["retired_section"] = {"x": 1}
    (old / "config.yaml").write_text(yaml.safe_dump(raw))
    pred = tunelab.load(old).predict(["good great film"])[0]
    assert pred["scores"]["pos"] == pytest.approx(0.5005838871002197, abs=1e-6)  # the value v0.1.0 read (test_old_runs)
    assert tunelab.evaluate(old, V010 / "data" / "sentiment.csv")["n"] == 60
