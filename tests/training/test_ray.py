"""Ray (the [ray] extra): Ray Train with 2 workers == torchrun with 2 processes; Ray Data predict writes the file the
one-process predict writes; tune --ray runs its trials as Ray tasks on the study's storage. One local Ray cluster of 2
CPUs serves the module; without the extra these tests skip, and each command says how to install it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.conftest import make_sentiment, tiny_recipe, write_csv
from tests.training.test_distributed import assert_same_weights, losses
from tunelab.errors import TunelabError

pytestmark = pytest.mark.slow  # 15 s or more: scheduled first (tests/conftest.py)


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="the [ray] extra is not installed: pip install 'tunelab[ray]'")
    # the workers import tunelab from where this process does (a worktree's src/ before an installed copy)
    src = os.path.dirname(os.path.dirname(__import__("tunelab").__file__))
    path = os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING",
             runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}})  # fmt: skip
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def runs(ray_cluster, tiny_bert, tmp_path_factory):
    """The same recipe trained under torchrun (2 processes, gloo) and on Ray Train (2 workers): the run directories."""
    from tunelab import api

    home = Path.home() / "ray_results"
    before = set(home.iterdir()) if home.is_dir() else set()
    tmp = tmp_path_factory.mktemp("ray-runs")
    data = write_csv(tmp / "sentiment.csv", make_sentiment(120))
    recipe = lambda out: tiny_recipe(tiny_bert, data, out, train={"max_steps": 4, "num_threads": 1})  # noqa: E731
    (tmp / "torchrun.yaml").write_text(yaml.safe_dump(recipe(tmp / "torchrun")))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    # torchrun runs while Ray starts its workers (much of which is waiting): the two overlap
    child = subprocess.Popen(torchrun + ["-m", "tunelab.cli", "train", str(tmp / "torchrun.yaml"), "--quiet"],
                             env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    try:
        run = api.train(recipe(tmp / "ray"), overrides={"distributed.ray.workers": 2}, show_progress=False)
    finally:
        assert child.wait(timeout=300) == 0
    ray_results = (set(home.iterdir()) if home.is_dir() else set()) - before
    return {"torchrun": tmp / "torchrun", "ray": run.dir, "data": data, "ray_results": ray_results}


def test_ray_train_matches_torchrun(runs):
    assert runs["ray"] == runs["torchrun"].with_name("ray")
    assert len(losses(runs["ray"])) == 4
    np.testing.assert_allclose(losses(runs["ray"]), losses(runs["torchrun"]), rtol=1e-5)
    assert_same_weights(runs["torchrun"], runs["ray"])
    m1, m2 = (json.loads((runs[k] / "metrics.json").read_text()) for k in ("torchrun", "ray"))
    assert m2["test"]["n"] == m1["test"]["n"] and abs(m2["test"]["loss"] - m1["test"]["loss"]) < 1e-6
    info = json.loads((runs["ray"] / "run.json").read_text())
    assert info["status"] == "completed"
    assert info["distributed"] == {"strategy": "ddp", "processes": 2, "launcher": "ray"}
    assert not runs["ray_results"]  # Ray Train's own storage went to a temporary folder, not ~/ray_results
    assert sorted(p.name for p in runs["ray"].parent.iterdir()) == ["ray", "sentiment.csv", "torchrun", "torchrun.yaml"]


def test_what_does_not_fit_is_refused_at_once_and_the_cpus_are_shared(ray_cluster, tiny_bert, sentiment_csv, tmp_path):
    """A 2-CPU cluster: 3 workers x 1 CPU would wait forever, so it is an error; unset, the CPUs are shared."""
    from tunelab import api
    from tunelab.training.ray_train import absolute, share

    over = {"distributed.ray.workers": 3, "distributed.ray.cpus_per_worker": 1}
    with pytest.raises(TunelabError, match="do not fit on this Ray cluster"):
        api.train(tiny_recipe(tiny_bert, sentiment_csv, tmp_path / "r"), overrides=over)
    assert [share(ray_cluster, n, None, 0, True, "x") for n in (1, 2, 3, 4)] == [2, 1, 0.66, 0.5]
    raw = absolute({"data": {"train": "d/train.csv"}, "model": {"name": "minilm"}, "train": {"output_dir": "runs/x"}})
    assert raw["data"]["train"] == str(Path.cwd() / "d/train.csv") and raw["model"]["name"] == "minilm"
    assert raw["train"]["output_dir"] == str(Path.cwd() / "runs/x")


def test_without_the_extra_each_command_says_how_to_install(monkeypatch, capsys, tiny_bert, sentiment_csv, tmp_path):
    from tests.search.conftest import search_recipe
    from tests.test_errors import run_cli

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails, as without the extra
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(tiny_bert, sentiment_csv, tmp_path / "r")))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text('{"task": "classification", "kind": "train"}')
    commands = [
        ["train", recipe, "--ray-workers", "2"],
        ["predict", tmp_path / "run", "--input", sentiment_csv, "--output", tmp_path / "p.jsonl", "--ray-workers", "2"],
        ["tune", search_recipe(tiny_bert, sentiment_csv, tmp_path), "--study-dir", tmp_path / "study", "--ray"],
    ]
    for command in commands:
        code, text = run_cli(monkeypatch, capsys, *command)
        assert code == 2 and "pip install 'tunelab[ray]'" in text, (command, text)
    assert not (tmp_path / "r").exists()


def test_ray_data_predict_writes_the_one_process_file(runs, tmp_path, monkeypatch, capsys):
    """`predict --ray-workers 2`: three windows over two actors, a row without text; the one-process file, in input
    order, byte for byte."""
    from tests.test_errors import run_cli
    from tunelab.predictors.stream import WINDOW

    rows = make_sentiment(2 * WINDOW + 50, seed=3)
    rows[7]["text"] = ""
    data = write_csv(tmp_path / "in.csv", rows)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each actor (1 CPU): a matmul's float sums depend on the thread count
    try:
        for name, ray in (("one.jsonl", []), ("ray.jsonl", ["--ray-workers", "2"])):
            out = tmp_path / name
            assert run_cli(monkeypatch, capsys, "predict", runs["ray"], "--input", data, "--output", out, *ray)[0] == 0
    finally:
        torch.set_num_threads(threads)
    one, two = (tmp_path / "one.jsonl").read_bytes(), (tmp_path / "ray.jsonl").read_bytes()
    assert two == one
    records = [json.loads(line) for line in two.splitlines()]
    assert [r["row"] for r in records] == list(range(len(rows))) and "error" in records[7]


def test_tune_ray_runs_the_trials_as_ray_tasks_on_the_study(ray_cluster, tiny_bert, tmp_path):
    """Two Ray tasks share the study's journal: two trials, numbered once each, trained in the tasks' processes."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    from tests.search.conftest import search_recipe
    from tunelab.search import tune

    data = write_csv(tmp_path / "sentiment.csv", make_sentiment(120))
    recipe = search_recipe(tiny_bert, data, tmp_path, steps=2, trials=2, pruner="none")
    study = tune(recipe, workers=2, study_dir=tmp_path / "study", ray=True, show_progress=False)
    assert study.counts["complete"] == 2 and study.best_dir.is_dir()
    name = json.loads((tmp_path / "study" / "study.json").read_text())["study_name"]
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(tmp_path / "study" / "journal.log")))
    trials = optuna.load_study(study_name=name, storage=storage).trials
    assert sorted(t.number for t in trials) == [0, 1]
    assert all(t.user_attrs["pid"] != os.getpid() for t in trials)  # not this process: Ray's workers
