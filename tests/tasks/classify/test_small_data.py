"""Small data sets (issue 35): the batch size chosen from the number of training examples (pinned), an explicit one
always winning, the choice recorded in run.json and printed by the report; and the report's "mostly truncated" line,
with the length that keeps 95% of the texts whole as `tunelab doctor` computes it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

import tunelab
from tests.conftest import tiny_recipe
from tunelab.config import DEMO_RECIPE, load_config
from tunelab.doctor.lengths import keeping_length, truncation_note
from tunelab.tasks.classify.config import choose_from_data, sized_batch


@pytest.mark.parametrize("n, batch", [(1, 16), (500, 16), (1533, 16), (4999, 16), (5000, 32), (8484, 32)])
def test_the_batch_size_follows_the_number_of_training_examples(n, batch):
    assert sized_batch(n)[0] == batch


def test_the_reason_names_the_size_and_the_steps_per_epoch():
    assert sized_batch(1533)[1] == (
        "1,533 training examples (< 5,000): batch 16 makes 96 optimizer steps per epoch where 32 makes 48; on a small "
        "set more updates per epoch matter more than throughput"
    )
    assert sized_batch(8484)[1].startswith("8,484 training examples (>= 5,000): batch 32 for throughput, 266 ")


def test_an_explicit_batch_size_always_wins():
    cfg = load_config({})
    assert choose_from_data(cfg, 1533) == {"train.batch_size": {"value": 16, "because": sized_batch(1533)[1]}}
    assert cfg.train.batch_size == 16 and "batch_size" not in cfg.train.model_fields_set  # still the recipe's "unset"
    for recipe, overrides, batch in (({"train": {"batch_size": 32}}, None, 32), ({}, {"train.batch_size": 64}, 64)):
        cfg = load_config(recipe, overrides)
        assert choose_from_data(cfg, 1533) == {} and cfg.train.batch_size == batch
    # a chosen size that an explicit micro-batch does not divide is not chosen (the recipe's default stays)
    cfg = load_config({"train": {"micro_batch_size": 32}})
    assert choose_from_data(cfg, 1533) == {} and cfg.train.batch_size == 32
    # the demo recipe names its batch: the demo trains as before, whatever its size
    assert choose_from_data(load_config(DEMO_RECIPE), 1000) == {}


def test_a_run_records_the_choice_and_the_report_prints_it(tiny_bert, sentiment_csv, tmp_path, capsys):
    from tunelab.cli.render import report

    recipe = tiny_recipe(tiny_bert, sentiment_csv, tmp_path / "run", train={"max_steps": 2})
    recipe["train"].pop("batch_size")
    run = tunelab.train(recipe, show_progress=False)
    info = json.loads((run.dir / "run.json").read_text())
    assert info["chosen"]["train.batch_size"]["value"] == 16 and info["data"]["train"] < 5000
    assert "training examples (< 5,000)" in info["chosen"]["train.batch_size"]["because"]
    assert yaml.safe_load((run.dir / "config.yaml").read_text())["train"]["batch_size"] == 16  # resume reads it
    report(run.dir, run.metrics)
    assert "train.batch_size 16 chosen because" in capsys.readouterr().out


def test_the_length_that_keeps_a_share_whole_is_a_percentile_rounded_up_to_8():
    lengths = np.arange(1, 101)  # 1..100 tokens
    assert keeping_length(lengths, 0.95) == 96 and keeping_length(lengths, 0.99) == 104
    assert keeping_length(np.full(10, 17), 0.95) == 24 and keeping_length(np.zeros(0), 0.95) == 8


def test_the_report_says_when_most_training_texts_were_truncated():
    # issue 35's news set: 1,532 of 1,533 training texts longer than 128 tokens
    note = truncation_note({"train": 1533, "truncated_train": 1532, "length_keeping_95": 424}, 128)
    assert note.startswith("most training texts were truncated: 1,532 of 1,533 (100%) are longer than data.max_length")
    assert "data.max_length: 424 keeps 95% of them whole" in note
    assert truncation_note({"train": 1000, "truncated_train": 100, "length_keeping_95": 136}, 128).startswith("many")
    assert truncation_note({"train": 1000, "truncated_train": 50, "length_keeping_95": 128}, 128) is None  # 5%: fine
    assert truncation_note({"train": 10, "truncated_train": 3}, 128) is not None  # an old run.json: no length
    assert truncation_note({}, 128) is None


def test_a_cross_validation_fold_chooses_its_batch_as_a_single_run_would(tmp_path):
    from tunelab.cv.crossval import _fold_recipe

    (tmp_path / "validation.jsonl").write_text("")
    unset = load_config({"train": {"folds": 3}})
    assert "batch_size" not in _fold_recipe(unset, tmp_path, tmp_path / "fold", False)["train"]
    explicit = load_config({"train": {"folds": 3, "batch_size": 32}})
    assert _fold_recipe(explicit, tmp_path, tmp_path / "fold", False)["train"]["batch_size"] == 32
