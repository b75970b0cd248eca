"""`tunelab ensemble`: a run directory used like any run (predict, eval, serve, tunelab.load), built from runs or from
a cross-validation's folds; identical members give the member; mismatched, moved and changed members are refused."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

import tunelab
from tests.conftest import make_sentiment, tiny_recipe, write_csv
from tunelab.errors import TunelabError


@pytest.fixture(scope="module")
def members(tiny_bert, tmp_path_factory):
    """Two finished runs on the same data (seeds 0 and 1), the data file and a file none of them trained on."""
    root = tmp_path_factory.mktemp("members")
    data = write_csv(root / "sentiment.csv", make_sentiment(120))
    runs = []
    for seed in (0, 1):
        train = {"max_steps": 6, "eval_every": 3, "seed": seed}
        recipe = tiny_recipe(tiny_bert, data, root / f"run{seed}", train=train)
        runs.append(tunelab.train(recipe, show_progress=False).dir)
    fresh = write_csv(root / "fresh.csv", make_sentiment(40, seed=9))
    return runs, data, fresh


def run_cli(monkeypatch, capsys, *args):
    from tunelab.cli import main

    monkeypatch.setattr(sys, "argv", ["tunelab", *map(str, args)])
    with pytest.raises(SystemExit) as done:
        main()
    captured = capsys.readouterr()
    return done.value.code, captured.out, captured.err


def test_an_ensemble_of_identical_members_is_the_member(members, tmp_path):
    (run, _), _, fresh = members
    twin = tmp_path / "twin"
    shutil.copytree(run, twin)
    member = tunelab.load(run)
    texts = [r["text"] for r in make_sentiment(10, seed=4)]
    alone = member.predict(texts)
    for method in ("mean", "weighted", "vote"):
        ens = tunelab.ensemble([run, twin], out=tmp_path / method, method=method)
        got = tunelab.load(ens.dir).predict(texts)
        assert [g["label"] for g in got] == [a["label"] for a in alone]
        for g, a in zip(got, alone):
            assert g["scores"] == pytest.approx(a["scores"], abs=1e-6)
        ours, theirs = tunelab.evaluate(ens.dir, fresh), member.evaluate(fresh)
        for name in ("accuracy", "f1_macro", "loss"):
            assert ours[name] == pytest.approx(theirs[name], abs=1e-5)
        assert ours["confusion_matrix"] == theirs["confusion_matrix"]
        report = json.loads((ens.dir / "ensemble.json").read_text())
        assert report["on"] == "the members' test split" and report["n"] == 12
        assert report["best_member"]["gain"] == pytest.approx(0.0, abs=1e-9)


def test_from_folds_weighted_through_the_cli_predict_eval_serve(members, tiny_bert, tmp_path, monkeypatch, capsys):
    _, data, fresh = members
    cv_dir = tmp_path / "cv"
    tunelab.train(tiny_recipe(tiny_bert, data, cv_dir, train={"folds": 3, "max_steps": 4, "eval_every": 2}),
                  show_progress=False)  # fmt: skip
    ens = tmp_path / "ens"
    args = ("ensemble", "--from-folds", cv_dir, "--out", ens, "--method", "weighted")
    code, out, _ = run_cli(monkeypatch, capsys, *args)
    assert code == 0 and "ensemble (weighted)" in out and "best member" in out

    # run.json: the folds by path and hash, weights ∝ each fold's validation accuracy
    info = json.loads((ens / "run.json").read_text())
    assert (info["kind"], info["task"], info["method"], info["from_folds"]) == ("ensemble", "classification",
                                                                                "weighted", str(cv_dir))  # fmt: skip
    folds = [cv_dir / "folds" / str(j) for j in (1, 2, 3)]
    accuracy = [json.loads((f / "metrics.json").read_text())["validation"]["accuracy"] for f in folds]
    assert [m["weight"] for m in info["members"]] == pytest.approx([a / sum(accuracy) for a in accuracy])
    assert [(ens / m["path"]).resolve() for m in info["members"]] == [f.resolve() for f in folds]
    report = json.loads((ens / "ensemble.json").read_text())
    assert report["on"] == f"the test split of {cv_dir}" and report["n"] == 12 and len(report["members"]) == 3
    assert "ensemble of 3 runs (weighted)" in (ens / "README.md").read_text()

    # predict: the weighted mean of the folds' probabilities, by hand
    texts = [r["text"] for r in make_sentiment(6, seed=7)]
    code, out, _ = run_cli(monkeypatch, capsys, "predict", ens, *texts)
    rows = [json.loads(line) for line in out.splitlines()]
    by_fold = [tunelab.load(f).predict(texts) for f in folds]
    w = [m["weight"] for m in info["members"]]
    for i, row in enumerate(rows):
        expected = {k: sum(wj * p[i]["scores"][k] for wj, p in zip(w, by_fold)) for k in ("neg", "pos")}
        assert row["text"] == texts[i] and row["scores"] == pytest.approx(expected, abs=1e-6)
        assert row["label"] == max(expected, key=expected.get)

    # eval on a file, and export refused
    code, out, _ = run_cli(monkeypatch, capsys, "eval", ens, "--data", fresh, "--json")
    assert code == 0 and json.loads(out)["n"] == 40
    with pytest.raises(TunelabError, match="an ensemble, not one model"):
        tunelab.export(ens, tmp_path / "exported")

    # serve: /v1/classify answers what predict answers; no embeddings (no model of its own)
    import httpx2

    from tests.serve.conftest import LiveServer
    from tunelab.serve import app

    live = LiveServer(app({"ens": ens}))
    try:
        got = httpx2.post(f"{live.url}/v1/classify", json={"model": "ens", "input": texts}, timeout=60).json()["data"]
        assert [g["label"] for g in got] == [r["label"] for r in rows]
        embed = httpx2.post(f"{live.url}/v1/embeddings", json={"model": "ens", "input": "x"}, timeout=60)
        assert embed.status_code == 400
    finally:
        live.stop()


def test_mismatched_moved_and_changed_members_are_refused(members, tiny_bert, tmp_path):
    (run0, run1), data, fresh = members
    three = write_csv(tmp_path / "three.csv", [{**r, "label": "meh" if i % 3 == 0 else r["label"]}
                                               for i, r in enumerate(make_sentiment(60))])  # fmt: skip
    odd = tunelab.train(tiny_recipe(tiny_bert, three, tmp_path / "odd", train={"max_steps": 2}), show_progress=False)
    with pytest.raises(TunelabError, match=r"odd: its label space \(meh, neg, pos\) differs"):
        tunelab.ensemble([run0, odd.dir], out=tmp_path / "e1")
    renamed = write_csv(tmp_path / "renamed.csv", [{"sentence": r["text"], "label": r["label"]}
                                                   for r in make_sentiment(60)])  # fmt: skip
    recipe = tiny_recipe(tiny_bert, renamed, tmp_path / "cols", train={"max_steps": 2})
    recipe["data"]["text_column"] = "sentence"
    cols = tunelab.train(recipe, show_progress=False)
    with pytest.raises(TunelabError, match="cols: its text columns .* differs"):
        tunelab.ensemble([run0, cols.dir], out=tmp_path / "e2")
    with pytest.raises(TunelabError, match="at least two members"):
        tunelab.ensemble([run0], out=tmp_path / "e3")
    other = write_csv(tmp_path / "other.csv", make_sentiment(60, seed=3))
    elsewhere = tunelab.train(tiny_recipe(tiny_bert, other, tmp_path / "elsewhere", train={"max_steps": 2}),
                              show_progress=False).dir  # fmt: skip
    with pytest.raises(TunelabError, match="were tested on different splits.*--data FILE"):
        tunelab.ensemble([run0, elsewhere], out=tmp_path / "e4")
    on_file = tunelab.ensemble([run0, elsewhere], out=tmp_path / "e4", data=fresh)
    assert (on_file.metrics["on"], on_file.metrics["n"]) == (str(fresh), 40)

    # moved and changed members
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(run0, a)
    shutil.copytree(run1, b)
    ens = tunelab.ensemble([a, b], out=tmp_path / "ens", method="vote").dir
    b.rename(tmp_path / "b-moved")
    with pytest.raises(TunelabError, match=r"member 2 \(\.\./b, .*\) is missing: it was moved or deleted"):
        tunelab.load(ens)
    (tmp_path / "b-moved").rename(b)
    tunelab.load(ens)  # back in place: fine
    config = b / "model" / "config.json"
    config.write_text(config.read_text().replace('"neg"', '"negative"'))
    with pytest.raises(TunelabError, match=r"member 2 \(.*\) changed since the ensemble was built"):
        tunelab.load(ens)
    with pytest.raises(TunelabError, match="already holds files"):
        tunelab.ensemble([a, run1], out=ens)


def test_multilabel_and_regression_ensembles_of_identical_members_are_the_member(tiny_bert, tmp_path):
    rows = [{"text": r["text"], "label": ("sport|" if i % 3 else "") + r["label"], "score": float(i % 7)}
            for i, r in enumerate(make_sentiment(60))]  # fmt: skip
    data = write_csv(tmp_path / "data.csv", rows)
    for task, methods in (("multilabel", ("mean", "vote")), ("regression", ("mean",))):
        recipe = tiny_recipe(tiny_bert, data, tmp_path / task, task=task, train={"max_steps": 4})
        recipe["data"]["label_column"] = "label" if task == "multilabel" else "score"
        run = tunelab.train(recipe, show_progress=False).dir
        shutil.copytree(run, tmp_path / f"{task}-twin")
        alone = tunelab.evaluate(run, data)
        for method in methods:
            ens = tunelab.ensemble([run, tmp_path / f"{task}-twin"], out=tmp_path / f"{task}-{method}", method=method)
            ours = tunelab.evaluate(ens.dir, data)
            names = ("f1_samples", "f1_micro", "subset_accuracy", "loss") if task == "multilabel" else ("mse", "r2")
            for name in names:
                assert ours[name] == pytest.approx(alone[name], abs=1e-5), (task, method, name)
        if task == "regression":
            with pytest.raises(TunelabError, match="regression ensembles average the members' values"):
                tunelab.ensemble([run, tmp_path / f"{task}-twin"], out=tmp_path / "refused", method="vote")
