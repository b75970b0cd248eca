"""Studies across processes: kill -9 part-way and the same command finishes the study; two workers share one journal;
under torchrun rank 0 samples and both ranks train the same parameters (here with a sqlite:/// database)."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest
import yaml

from tests.search.conftest import search_recipe
from tunelab.search.study import is_dead

pytestmark = pytest.mark.slow  # 15 s or more: scheduled first (tests/conftest.py)


def load(study_dir, storage=None):
    from tunelab.search.study import quiet_optuna, storage_for

    optuna = quiet_optuna()
    return optuna.load_study(study_name=study_dir.name, storage=storage_for(study_dir, storage))


def tune_command(recipe, study_dir, *extra):
    return [sys.executable, "-m", "tunelab.cli", "tune", str(recipe), "--study-dir", str(study_dir), "--quiet", *extra]


def test_kill_9_then_the_same_command_finishes_the_study_with_two_workers(tiny_bert, sentiment_csv, tmp_path):
    recipe = search_recipe(tiny_bert, sentiment_csv, tmp_path, steps=40, trials=6)
    study_dir = tmp_path / "study"
    command = tune_command(recipe, study_dir, "--workers", "2")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(command, env=env, start_new_session=True, stderr=subprocess.PIPE, text=True)

    # ---- kill -9 once a trial has finished and others are running
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        time.sleep(0.3)
        if not (study_dir / "journal.log").exists():
            continue
        states = [t.state.name for t in load(study_dir).get_trials()]
        if states.count("COMPLETE") >= 1 and "RUNNING" in states:
            break
    else:
        first.kill()
        raise AssertionError("no trial finished in time: " + first.communicate()[1][-3000:])
    workers = [{"host": socket.gethostname(), "pid": w.pid, "pid_started": w.create_time()}
               for w in psutil.Process(first.pid).children()]  # fmt: skip
    assert len(workers) == 2
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    killed = [t for t in load(study_dir).get_trials() if t.state.name == "RUNNING"]
    assert killed
    # the workers die with the tune process (a trial asked in the instant before the kill may have no pid yet)
    deadline = time.monotonic() + 20
    while not all(map(is_dead, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(map(is_dead, workers)), "a worker outlived the tune process"
    assert all(is_dead(t.user_attrs) for t in killed if "pid" in t.user_attrs)

    # ---- the same command: dead trials failed and re-run, every finished trial kept, the count exact
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    trials = load(study_dir).get_trials()
    states = [t.state.name for t in trials]
    assert states.count("COMPLETE") + states.count("PRUNED") == 6
    assert sorted(t.number for t in trials) == list(range(len(trials)))  # no trial number twice
    by_number = {t.number: t for t in trials}
    for dead in killed:
        assert by_number[dead.number].state.name == "FAIL"
        retry = [t for t in trials if t.user_attrs.get("retry_of") == dead.number]
        assert len(retry) == 1 and retry[0].state.name != "FAIL"
        # the same parameters again; a trial killed in the instant after it was asked, before it drew any, has none
        # to repeat, and its retry draws its own (seen once in CI: the dead trial's params were {})
        assert retry[0].params == dead.params or not dead.params
        run_json = study_dir / "trials" / f"{dead.number:04d}" / "run.json"
        if run_json.exists():  # (a trial killed before its run started has no run directory)
            info = json.loads(run_json.read_text())
            assert info["status"] == "failed" and "died" in info["error"]
    with open(study_dir / "trials.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == len(trials)

    # ---- each worker trained with its share of the threads, recorded in the trial's recipe
    cpus = len(os.sched_getaffinity(0))
    for t in trials:
        if t.state.name in ("COMPLETE", "PRUNED"):
            config = yaml.safe_load((study_dir / "trials" / f"{t.number:04d}" / "config.yaml").read_text())
            assert config["train"]["num_threads"] == max(1, cpus // 2)
    assert (study_dir / "best").is_symlink() and (study_dir / "best" / "model").is_dir()


def test_under_torchrun_both_ranks_train_the_parameters_rank_0_drew(tiny_bert, sentiment_csv, tmp_path):
    recipe = search_recipe(tiny_bert, sentiment_csv, tmp_path, steps=4, trials=2)
    raw = yaml.safe_load(recipe.read_text())
    raw["train"]["num_threads"] = 1
    recipe.write_text(yaml.safe_dump(raw))
    study_dir = tmp_path / "study"
    storage = f"sqlite:///{tmp_path / 'study.db'}"  # an Optuna RDB URL, as workers on many machines would share
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command = torchrun + tune_command(recipe, study_dir, "--storage", storage)[1:]
    done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    drawn = re.findall(r"trial (\d+) \(rank (\d) of 2\): (.+)", done.stderr)
    per_trial = {}
    for number, rank, params in drawn:
        per_trial.setdefault(number, {})[rank] = params
    assert set(per_trial) == {"0", "1"}, done.stderr[-3000:]
    for params in per_trial.values():
        assert set(params) == {"0", "1"} and params["0"] == params["1"], done.stderr[-3000:]  # what rank 0 drew
    trials = load(study_dir, storage).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert not (study_dir / "journal.log").exists()  # the database held the study


def test_ctrl_c_then_the_same_command_continues_the_trial_from_its_checkpoint(tiny_bert, sentiment_csv, tmp_path):
    recipe = search_recipe(tiny_bert, sentiment_csv, tmp_path, steps=120, trials=1, pruner="none")
    raw = yaml.safe_load(recipe.read_text())
    raw["train"].update(eval_every=6, log_every=6)
    recipe.write_text(yaml.safe_dump(raw))
    study_dir = tmp_path / "study"
    first = subprocess.Popen(tune_command(recipe, study_dir), stderr=subprocess.PIPE, text=True)
    latest = study_dir / "trials" / "0000" / "checkpoints" / "latest"
    deadline = time.monotonic() + 120
    while not latest.exists() and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.05)
    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=60) == 130, first.communicate()[1][-3000:]

    again = subprocess.run(tune_command(recipe, study_dir), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    first_try, retry = load(study_dir).get_trials()
    assert (first_try.state.name, retry.state.name, retry.user_attrs["retry_of"]) == ("FAIL", "COMPLETE", 0)
    assert retry.params == first_try.params and retry.user_attrs["resumed_from_step"] >= 6  # Ctrl-C saved a checkpoint
    assert sorted(retry.intermediate_values) == list(range(1, 21))  # the earlier validations heard again, once each
    run = study_dir / "trials" / "0001"
    assert not (study_dir / "trials" / "0000").exists()  # the run moved on with its trial
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 120  # one history, no step twice
    info = json.loads((run / "run.json").read_text())
    assert (info["status"], info["steps"], info["best"]["value"]) == ("completed", 120, retry.value)
