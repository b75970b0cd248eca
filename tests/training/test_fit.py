"""The loop's hooks: on_validation sees every validation's metrics and may stop the run (a search's pruner)."""

from __future__ import annotations

import json

import tunelab
from tests.conftest import tiny_recipe


def test_on_validation_sees_each_validation_and_can_stop_the_run_as_pruned(tiny_bert, sentiment_csv, tmp_path):
    seen = []

    def prune_after_the_second(step, metrics):
        seen.append((step, dict(metrics)))
        return len(seen) == 2

    recipe = tiny_recipe(tiny_bert, sentiment_csv, tmp_path / "run", train={"max_steps": 12, "eval_every": 2})
    run = tunelab.train(recipe, show_progress=False, on_validation=prune_after_the_second)
    assert [step for step, _ in seen] == [2, 4]
    assert {"loss", "accuracy"} <= set(seen[0][1])
    assert run.metrics["status"] == "pruned" and run.metrics["steps"] == 4
    assert json.loads((run.dir / "run.json").read_text())["status"] == "pruned"
    # a pruned run will not be used: its record stays (metrics, curves, run.json), no test, no model, no checkpoints
    assert not (run.dir / "model").exists() and not (run.dir / "checkpoints").exists()
    assert run.metrics["test"] == {} and (run.dir / "metrics.jsonl").exists()

    seen.clear()
    never = tunelab.train(
        tiny_recipe(tiny_bert, sentiment_csv, tmp_path / "run2", train={"max_steps": 6, "eval_every": 2}),
        show_progress=False,
        on_validation=lambda step, metrics: seen.append(step) and False,
    )
    assert seen == [2, 4, 6] and never.metrics["status"] == "completed"
