"""The run index: several writers at once, runs seen while they train and when they finish, sync rebuilds it from the
run directories, a broken index never fails a run, and `tunelab runs list|show|compare|rm|sync`."""

from __future__ import annotations

import json
import multiprocessing as mp
import sqlite3

import pytest
from typer.testing import CliRunner

import tunelab
from tests.conftest import tiny_recipe
from tests.test_errors import run_cli
from tunelab.cli import app
from tunelab.runs import index
from tunelab.runs.rundir import RunDir


def _writer(root: str, k: int, n: int, out) -> None:
    for i in range(n):
        run = RunDir(f"{root}/w{k}-{i}")
        run.path.mkdir(parents=True)
        index.record(run.path, {"task": "classification", "status": "running", "created": f"2026-12-03T00:{i:02d}"},
                     root=index.Path(root))  # fmt: skip
        index.logged(run.path, i, 0.5, root=index.Path(root))
        index.record(run.path, {"task": "classification", "status": "completed", "steps": i},
                     root=index.Path(root))  # fmt: skip
    out.put(index._warned)


def test_several_processes_write_at_once(tmp_path):
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), k, 40, out)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [out.get(timeout=5) for _ in procs] == [False] * 4  # no writer gave up
    rows = index.rows(tmp_path)
    assert len(rows) == 160 and {r["status"] for r in rows} == {"completed"}
    assert sorted(r["step"] for r in rows if r["name"].startswith("w2-")) == list(range(40))
    mode = sqlite3.connect(tmp_path / index.NAME).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_a_run_is_indexed_while_it_trains_and_when_it_ends_and_sync_rebuilds_it(tiny_bert, sentiment_csv, tmp_path,
                                                                                 monkeypatch):  # fmt: skip
    root = tmp_path / "runs"
    monkeypatch.setenv("TUNELAB_RUNS_DIR", str(root))
    seen = []

    def on_step(step):
        if step == 8:
            seen.extend((r["status"], r["step"]) for r in index.rows(root))

    recipe = tiny_recipe(tiny_bert, sentiment_csv, None, train={"max_steps": 10, "log_every": 1})
    run = tunelab.train(recipe, show_progress=False, on_step=on_step)
    assert run.dir.parent == root  # the default output directory is the runs directory
    assert seen and seen[0][0] == "running" and 1 <= seen[0][1] <= 8
    (row,) = index.rows(root)
    assert row["status"] == "completed" and row["step"] == 10 and row["task"] == "classification"
    assert row["metrics"]["test"]["accuracy"] == run.metrics["test"]["accuracy"]
    assert row["info"]["peak_rss_mb"] == run.info["peak_rss_mb"] > 0  # the run's peak memory (training/memory.py)
    before = {k: row[k] for k in ("path", "status", "task", "kind", "best_value", "step")}
    (root / index.NAME).unlink()
    assert index.rebuild(root) == 1
    (again,) = index.rows(root)
    assert {k: again[k] for k in before} == before and again["metrics"] == row["metrics"]


def test_a_broken_index_never_fails_a_run(tiny_bert, sentiment_csv, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the runs directory should be")
    monkeypatch.setenv("TUNELAB_RUNS_DIR", str(blocker))
    monkeypatch.setattr(index, "_warned", False)
    run = tunelab.train(tiny_recipe(tiny_bert, sentiment_csv, tmp_path / "run"), show_progress=False)
    assert run.info["status"] == "completed"
    said = capsys.readouterr().err
    assert said.count("the run index") == 1 and "tunelab runs sync" in said


def test_runs_cli_list_show_compare_rm(tiny_bert, sentiment_csv, tmp_path, monkeypatch, capsys):
    root = tmp_path / "runs"
    monkeypatch.setenv("TUNELAB_RUNS_DIR", str(root))
    a = tunelab.train(tiny_recipe(tiny_bert, sentiment_csv, root / "a"), show_progress=False)
    b = tunelab.train(tiny_recipe(tiny_bert, sentiment_csv, root / "b", optim={"lr": 5e-3}), show_progress=False)
    cli = CliRunner()
    listed = json.loads(cli.invoke(app, ["runs", "list", "--json"]).output)
    assert {r["name"] for r in listed} == {"a", "b"}
    acc = b.metrics["test"]["accuracy"]
    hit = json.loads(cli.invoke(app, ["runs", "list", "--json", "--where", f"test.accuracy>={acc}", "--where",
                                      "optim.lr!=nothing"]).output)  # fmt: skip
    assert all(r["metrics"]["test"]["accuracy"] >= acc for r in hit) and "b" in {r["name"] for r in hit}
    assert json.loads(cli.invoke(app, ["runs", "list", "--json", "--task", "ner"]).output) == []
    shown = json.loads(cli.invoke(app, ["runs", "show", "a", "--json"]).output)
    assert shown["run"]["status"] == "completed" and shown["metrics"]["test"] == a.metrics["test"]
    c = json.loads(cli.invoke(app, ["runs", "compare", "a", str(b.dir), "--json"]).output)
    assert c["runs"] == ["a", "b"] and c["recipe"] == {"optim.lr": [0.001, 0.005]}
    assert c["metrics"]["test.accuracy"] == [a.metrics["test"]["accuracy"], acc]
    table = cli.invoke(app, ["runs", "list"], env={"COLUMNS": "250"}).output  # one line per run
    assert "2 runs in" in table and f"accuracy {acc:.4f}" in table  # the test column, as the dashboard shows it
    assert "peak MB" in table and f" {b.info['peak_rss_mb']} " in table

    code, said = run_cli(monkeypatch, capsys, "runs", "rm", "a")
    assert code == 2 and "--yes" in said and a.dir.is_dir()
    assert cli.invoke(app, ["runs", "rm", "a", "--yes"]).exit_code == 0
    assert not a.dir.exists() and [r["name"] for r in index.rows(root)] == ["b"]
    code, said = run_cli(monkeypatch, capsys, "runs", "show", "zzz")
    assert code == 2 and "no such run" in said
    with pytest.raises(Exception):
        index.from_disk(tmp_path / "nowhere")


def test_the_test_column_shows_each_family_its_own_metric():
    """An ner run's column is its entity f1, not its word accuracy; every family shows the registry's metric; a task
    this version does not know falls back to the first headline metric its test has."""
    from tunelab.registry import TASKS
    from tunelab.runs.query import HEADLINE, headline

    ner = {"task": "ner", "metrics": {"test": {"accuracy": 0.96, "f1": 0.47, "loss": 0.2}}}
    assert headline(ner) == ("f1", 0.47)
    names = dict.fromkeys([*HEADLINE, *(family.metric for family in TASKS.values())])  # rougeL, chrf too
    every = {name: 0.1 * i for i, name in enumerate(names, 1)}
    for task, family in TASKS.items():
        assert headline({"task": task, "metrics": {"test": every}}) == (family.metric, every[family.metric]), task
    assert headline({"task": "question_answering", "metrics": {"test": {"rouge": 0.3, "mse": 0.2}}}) == ("mse", 0.2)
    assert headline({"task": "ner", "metrics": {"test": {"loss": 0.2}}}) is None
    assert headline({"task": "ner", "metrics": {}}) is None
