"""Classification data edge cases."""

from __future__ import annotations

import tunelab
from tests.conftest import tiny_recipe


def test_no_validation_and_no_test_split_trains(tiny_bert, sentiment_csv, tmp_path):
    """validation_fraction 0 and test_fraction 0: empty splits are skipped, not tokenised into a crash."""
    recipe = tiny_recipe(
        tiny_bert, sentiment_csv, tmp_path / "run", data={"validation_fraction": 0.0, "test_fraction": 0.0}
    )
    run = tunelab.train(recipe, show_progress=False)
    assert run.info["data"]["validation"] == 0 and run.info["data"]["test"] == 0
    assert run.metrics["steps"] == 6 and run.metrics["test"] == {}
