"""Early stopping: the stopper alone and in a training run."""

from __future__ import annotations

from tunelab.training.early_stopping import EarlyStopper


def test_early_stopper_records_best_and_stops_after_patience():
    s = EarlyStopper("accuracy", higher_is_better=True, patience=2)
    assert s.update(0.5, 10) and not s.update(0.4, 20) and not s.should_stop
    assert not s.update(0.5, 30) and s.should_stop and (s.best, s.best_step) == (0.5, 10)
    never = EarlyStopper("mse", higher_is_better=False)
    for step, v in enumerate([3.0, 2.0, 2.5, 2.6, 2.7]):
        never.update(v, step)
    assert not never.should_stop and never.best == 2.0


def test_early_stopping_in_training_keeps_the_best_checkpoint(tiny_bert, sentiment_csv, tmp_path):
    import json

    import tunelab
    from tests.conftest import tiny_recipe

    recipe = tiny_recipe(
        tiny_bert,
        sentiment_csv,
        tmp_path / "run",
        train={"max_steps": 40, "eval_every": 2},
        optim={"lr": 0.05},
        eval={"patience": 1, "metric": "loss"},
    )
    run = tunelab.train(recipe, show_progress=False)
    m = run.metrics
    assert m["status"] == "stopped_early" and m["steps"] < 40
    vals = [
        r["val_loss"] for r in map(json.loads, (run.dir / "metrics.jsonl").read_text().splitlines()) if "val_loss" in r
    ]
    assert m["validation"]["loss"] == min(vals) and m["best_step"] == 2 * (vals.index(min(vals)) + 1)
