"""A study in one process: trials are ordinary runs, the best keeps its model, best.yaml reproduces it, a pruner
prunes, the same command continues the same study and a changed one is refused."""

from __future__ import annotations

import csv
import json

import pytest
import yaml

import tunelab
from tests.search.conftest import search_recipe
from tunelab.errors import TunelabError


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_study_runs_ordinary_trials_and_keeps_the_best(tiny_bert, sentiment_csv, tmp_path):
    recipe = search_recipe(tiny_bert, sentiment_csv, tmp_path, metric="loss", pruner="none")
    study_dir = tmp_path / "study"
    study = tunelab.tune(recipe, study_dir=study_dir, show_progress=False)

    assert study.counts["complete"] == 4 and (study.metric, study.direction) == ("loss", "minimize")
    rows = read_csv(study_dir / "trials.csv")
    assert [int(r["number"]) for r in rows] == [0, 1, 2, 3]
    assert set(rows[0]) >= {"state", "value", "params.optim.lr", "params.method.r", "validations", "steps", "run_dir"}
    values = {int(r["number"]): float(r["value"]) for r in rows}
    assert study.best_number == min(values, key=values.get)  # the best, not the last
    for r in rows:
        run = study_dir / "trials" / f"{int(r['number']):04d}"
        info = json.loads((run / "run.json").read_text())
        assert (info["kind"], info["parent"], info["status"]) == ("trial", str(study_dir), "completed")
        assert info["best"]["value"] == pytest.approx(float(r["value"]))  # Optuna was told the run's best validation
        assert (r["validations"], r["steps"]) == ("3", "6")
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert config["method"]["r"] == int(r["params.method.r"])
        assert config["optim"]["lr"] == pytest.approx(float(r["params.optim.lr"]))
        kept = int(r["number"]) == study.best_number
        assert (run / "model").is_dir() == kept and (run / "checkpoints").is_dir() == kept  # keep: best
    best = study_dir / "best"
    assert best.is_symlink() and best.resolve() == (study_dir / "trials" / f"{study.best_number:04d}").resolve()
    assert json.loads((best / "run.json").read_text())["best"]["value"] == study.best_value
    assert {p.name for p in study.plots} >= {"history.png", "importances.png", "slice.png"}
    assert json.loads((study_dir / "run.json").read_text())["kind"] == "study"

    # best.yaml: a complete recipe (threads and precision pinned) that trains the best trial again
    best_yaml = yaml.safe_load((study_dir / "best.yaml").read_text())
    assert best_yaml["train"]["num_threads"] >= 1 and best_yaml["train"]["precision"] == "fp32"
    assert "search" not in best_yaml
    again = tunelab.train(study_dir / "best.yaml", overrides={"train.output_dir": str(tmp_path / "again")},
                          show_progress=False)  # fmt: skip
    assert again.info["best"]["value"] == pytest.approx(study.best_value, abs=1e-6)

    # the same command: the same study, already full; --trials 5: one more trial, numbered on
    assert tunelab.tune(recipe, study_dir=study_dir, show_progress=False).counts["complete"] == 4
    assert tunelab.tune(recipe, study_dir=study_dir, trials=5, show_progress=False).counts["complete"] == 5
    assert (study_dir / "trials" / "0004" / "run.json").exists()

    # a changed search block is refused, unless --new (the old study is kept beside the new one)
    changed = search_recipe(
        tiny_bert,
        sentiment_csv,
        tmp_path,
        metric="loss",
        pruner="none",
        trials=1,
        space={"optim.lr": {"float": [1.0e-4, 1.0e-2], "log": True}, "method.r": {"int": [2, 4]}},
    )
    with pytest.raises(TunelabError, match=r"another recipe or search block \(changed: search.space.method.r\).*--new"):
        tunelab.tune(changed, study_dir=study_dir, show_progress=False)  # fmt: skip
    fresh = tunelab.tune(changed, study_dir=study_dir, new=True, show_progress=False)
    assert fresh.counts["complete"] == 1 and fresh.best_number == 0
    assert len(list(tmp_path.glob("study.old-*/trials/0004"))) == 1


def test_a_pruned_trial_stops_at_its_validation_and_keeps_no_model(tiny_bert, sentiment_csv, tmp_path):
    import optuna

    recipe = search_recipe(tiny_bert, sentiment_csv, tmp_path, trials=2)
    never_good_enough = optuna.pruners.ThresholdPruner(lower=1.01)  # accuracy is never above 1.01: prune at once
    study = tunelab.tune(recipe, study_dir=tmp_path / "s", pruner=never_good_enough, show_progress=False)
    assert study.counts["pruned"] == 2 and study.best_number is None
    for r in read_csv(tmp_path / "s" / "trials.csv"):
        run = tmp_path / "s" / "trials" / f"{int(r['number']):04d}"
        assert (r["state"], r["validations"], r["steps"]) == ("PRUNED", "1", "2")
        assert json.loads((run / "run.json").read_text())["status"] == "pruned"
        assert not (run / "model").exists() and not (run / "checkpoints").exists()
        assert json.loads((run / "metrics.json").read_text())["test"] == {}  # no test run for a pruned trial
    assert not (tmp_path / "s" / "best").exists() and not (tmp_path / "s" / "best.yaml").exists()


def test_train_trains_the_base_recipe_and_says_the_search_block_was_ignored(tiny_bert, sentiment_csv, tmp_path, capsys):
    recipe = search_recipe(tiny_bert, sentiment_csv, tmp_path)
    run = tunelab.train(recipe, overrides={"train.output_dir": str(tmp_path / "run")}, show_progress=False)
    assert "search: block was ignored" in capsys.readouterr().err
    config = yaml.safe_load((run.dir / "config.yaml").read_text())
    assert "search" not in config and config["optim"]["lr"] == 1e-3 and config["method"]["r"] == 8


def test_a_trial_asked_by_a_worker_killed_before_it_recorded_its_process_is_recovered(tmp_path):
    """Killed between study.ask() and recording host/pid: under the study's own lock that trial is an orphan at once;
    with a database shared by machines (whose workers do not share the lock) only once it is a minute old."""
    from tunelab.search.study import quiet_optuna, recover_dead

    optuna = quiet_optuna()
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    orphan = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    assert recover_dead(study, tmp_path, shared_lock=False) == []  # a fresh one may be another machine's, recording
    assert recover_dead(study, tmp_path, shared_lock=True) == [orphan.number]
    states = {t.number: t for t in study.get_trials()}
    assert states[orphan.number].state.name == "FAIL"
    assert [t.user_attrs.get("retry_of") for t in states.values() if t.state.name == "WAITING"] == [orphan.number]
