"""The dashboard's JSON API (httpx through FastAPI's TestClient): runs, a run with its history growing from an offset,
files confined to the run directory, compare, a study's trials, and the API key gate."""

from __future__ import annotations

import json

import pytest

import tunelab
from tests.conftest import tiny_recipe
from tests.search.conftest import search_recipe

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from tunelab.ui import app  # noqa: E402
from tunelab.ui.server import run_id  # noqa: E402


@pytest.fixture
def two_runs(tiny_bert, sentiment_csv, tmp_path, monkeypatch):
    root = tmp_path / "runs"
    monkeypatch.setenv("TUNELAB_RUNS_DIR", str(root))
    a = tunelab.train(tiny_recipe(tiny_bert, sentiment_csv, root / "a"), show_progress=False)
    b = tunelab.train(tiny_recipe(tiny_bert, sentiment_csv, root / "b", optim={"lr": 5e-3}), show_progress=False)
    return root, a, b


def test_runs_run_history_files_compare(two_runs):
    root, a, b = two_runs
    client = TestClient(app(root))
    runs = client.get("/api/runs").json()["runs"]
    assert {r["name"] for r in runs} == {"a", "b"} and all(r["status"] == "completed" for r in runs)
    assert client.get("/api/runs", params={"where": "optim.lr>0.002"}).json()["runs"][0]["name"] == "b"
    assert client.get("/api/runs", params={"where": "nonsense"}).status_code == 400

    rid = run_id(str(a.dir.resolve()))
    shown = client.get(f"/api/runs/{rid}").json()
    assert shown["metrics"]["test"] == a.metrics["test"] and "optim:" in shown["recipe"]
    assert shown["headline"] == ["accuracy", a.metrics["test"]["accuracy"]]  # the runs table's test column
    assert shown["peak_rss_mb"] == a.info["peak_rss_mb"] > 0  # the runs table's and the run page's peak memory
    assert "metrics.jsonl" in shown["files"] and not any(f.startswith("checkpoints/") for f in shown["files"])
    lines = (a.dir / "metrics.jsonl").read_text().splitlines()
    whole = client.get(f"/api/runs/{rid}/history").json()
    assert len(whole["records"]) == len(lines) == whole["next"]
    tail = client.get(f"/api/runs/{rid}/history", params={"after": 3}).json()
    assert tail["records"] == [json.loads(x) for x in lines[3:]]

    assert client.get(f"/api/runs/{rid}/files/metrics.json").json() == json.loads((a.dir / "metrics.json").read_text())
    for escape in ("../b/metrics.json", "..%2Fb%2Fmetrics.json", "%2e%2e/%2e%2e/etc/passwd", "/etc/passwd"):
        r = client.get(f"/api/runs/{rid}/files/{escape}")
        assert r.status_code == 404, escape
    assert client.get("/api/runs/000000000000").status_code == 404

    c = client.get("/api/compare", params={"ids": f"{rid},{run_id(str(b.dir.resolve()))}"}).json()
    assert c["recipe"] == {"optim.lr": [0.001, 0.005]} and len(c["histories"]) == 2
    assert client.get("/api/compare", params={"ids": rid}).status_code == 400
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert "function chart" in client.get("/static/app.js").text


def test_an_api_key_guards_everything_and_the_browser_gets_a_cookie(two_runs):
    root, _, _ = two_runs
    client = TestClient(app(root, api_key="s3cret"))
    assert client.get("/api/runs").status_code == 401 and client.get("/").status_code == 401
    assert client.get("/api/runs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/api/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401
    first = client.get("/?key=s3cret", follow_redirects=False)
    assert first.status_code == 303 and "key=" not in first.headers["location"]
    assert client.get("/api/runs").status_code == 200  # the cookie the redirect set


def test_ui_refuses_another_address_without_a_key(tmp_path):
    from tunelab.errors import TunelabError
    from tunelab.ui import serve_dashboard

    with pytest.raises(TunelabError, match="API key"):
        serve_dashboard(tmp_path, host="0.0.0.0")


def test_a_study_lists_its_trials(tiny_bert, sentiment_csv, tmp_path, monkeypatch):
    root = tmp_path / "runs"
    monkeypatch.setenv("TUNELAB_RUNS_DIR", str(root))
    recipe = search_recipe(tiny_bert, sentiment_csv, tmp_path, steps=2, trials=2)
    study = tunelab.tune(recipe, study_dir=root / "study", show_progress=False)
    client = TestClient(app(root))
    rows = client.get("/api/runs", params={"all": True}).json()["runs"]
    parent = next(r for r in rows if r["kind"] == "study")
    shown = client.get(f"/api/runs/{parent['id']}").json()
    assert len(shown["children"]) == 2 and all(c["kind"] == "trial" for c in shown["children"])
    assert study is not None
