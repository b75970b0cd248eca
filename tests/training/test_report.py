"""train.report_to: [tensorboard] writes the same scalars metrics.jsonl holds, as TensorBoard event files."""

from __future__ import annotations

import json

import pytest

import tunelab
from tests.conftest import tiny_recipe

pytest.importorskip("tensorboard")


def test_tensorboard_event_files_hold_the_logged_records(tiny_bert, sentiment_csv, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    recipe = tiny_recipe(tiny_bert, sentiment_csv, tmp_path / "run", train={"max_steps": 6, "eval_every": 3,
                                                                            "report_to": ["tensorboard"]})  # fmt: skip
    run = tunelab.train(recipe, show_progress=False)
    events = EventAccumulator(str(run.dir / "tensorboard"))
    events.Reload()
    records = [json.loads(x) for x in (run.dir / "metrics.jsonl").read_text().splitlines()]
    for tag, key in (("train/loss", "loss"), ("validation/accuracy", "val_accuracy")):
        logged = [r for r in records if key in r]
        written = events.Scalars(tag)
        assert [e.step for e in written] == [r["step"] for r in logged] and len(logged) >= 2
        assert [e.value for e in written] == pytest.approx([r[key] for r in logged], rel=1e-6)
    assert not (tmp_path / "plain").exists()
    plain = tunelab.train(tiny_recipe(tiny_bert, sentiment_csv, tmp_path / "plain"), show_progress=False)
    assert not (plain.dir / "tensorboard").exists()  # off unless asked for
