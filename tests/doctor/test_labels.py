"""`tunelab doctor --labels RUN`: planted label flips found — by our ranking against cleanlab's own call, and end to end
on a K-fold run of a tiny model on an easy task; a plain run checks only validation and test, and says so."""

from __future__ import annotations

import csv
import json
import random

import numpy as np
from typer.testing import CliRunner

import tunelab
from tests.conftest import tiny_recipe, write_csv
from tests.test_errors import run_cli
from tunelab.cli import app
from tunelab.doctor.labels import rank


def test_rank_finds_planted_flips_as_cleanlab_does():
    from cleanlab.filter import find_label_issues

    rng = np.random.default_rng(0)
    names = ["a", "b", "c"]
    true = rng.integers(0, 3, 300)
    probs = np.full((300, 3), 0.05)
    probs[np.arange(300), true] = 0.9
    probs += rng.uniform(0, 0.04, probs.shape)
    probs /= probs.sum(1, keepdims=True)
    given = true.copy()
    flipped = rng.choice(300, 15, replace=False)
    given[flipped] = (true[flipped] + 1) % 3
    rows = [{"text": f"t{i}", "label": names[g], "probs": dict(zip(names, p)), "line": i + 2, "source": "x.csv"}
            for i, (g, p) in enumerate(zip(given, probs))]  # fmt: skip
    found = rank(rows, names, "classification")
    assert {f["index"] for f in found} == set(flipped.tolist())
    # n_jobs=1, as tunelab calls it: cleanlab's default forks a pool, and a fork of this threaded process (a Ray
    # driver or torch threads from an earlier test in the same worker) hung on a lock held at the fork
    assert [f["index"] for f in found] == find_label_issues(
        given, probs, return_indices_ranked_by="self_confidence", n_jobs=1
    ).tolist()
    first = found[0]
    assert first["suggested_label"] == names[true[first["index"]]] and first["line"] == first["index"] + 2
    assert [f["label_quality"] for f in found] == sorted(f["label_quality"] for f in found)


def easy_rows(n: int, flips: int, seed: int = 0) -> tuple[list[dict], set[int]]:
    """One word decides the label; `flips` rows get the other label (their file line numbers returned)."""
    rng = random.Random(seed)
    rows = [{"text": f"{w} {w} {w} item {i}", "label": w} for i, w in enumerate(rng.choice(["red", "blue"])
                                                                                 for _ in range(n))]  # fmt: skip
    planted = set(rng.sample(range(n), flips))
    for i in planted:
        rows[i]["label"] = "blue" if rows[i]["label"] == "red" else "red"
    return rows, {i + 2 for i in planted}  # line 1 is the header


def test_doctor_labels_on_a_cross_validation_finds_the_flips(tiny_bert, tmp_path):
    rows, planted = easy_rows(150, 8)
    data = write_csv(tmp_path / "easy.csv", rows)
    recipe = tiny_recipe(tiny_bert, data, tmp_path / "cv", optim={"lr": 5e-3, "warmup_steps": 0},
                         train={"folds": 3, "max_steps": 40, "eval_every": 40})  # fmt: skip
    recipe["data"]["test_fraction"] = 0.0
    tunelab.train(recipe, show_progress=False)
    result = CliRunner().invoke(app, ["doctor", "--labels", str(tmp_path / "cv"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    found = list(csv.DictReader(open(tmp_path / "out" / "label_issues.csv", encoding="utf-8")))
    lines = {int(f["line"]) for f in found}
    assert len(lines & planted) >= 6, (lines, planted)  # most flips found...
    assert len(lines - planted) <= 3  # ...and few clean rows accused
    top = found[0]
    assert top["file"].endswith("easy.csv") and top["suggested_label"] != top["given_label"]
    assert "out of fold" in json.loads((tmp_path / "out" / "label_issues.json").read_text())["scope"]


def test_doctor_labels_on_a_plain_run_checks_held_out_only(tiny_bert, tmp_path, monkeypatch, capsys):
    rows, _ = easy_rows(60, 0)
    data = write_csv(tmp_path / "easy.csv", rows)
    run = tunelab.train(tiny_recipe(tiny_bert, data, tmp_path / "run"), show_progress=False)
    result = CliRunner().invoke(app, ["doctor", "--labels", str(run.dir), "--out", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["examples"] == run.info["data"]["validation"] + run.info["data"]["test"]
    assert "validation and test examples only" in summary["scope"]
    code, said = run_cli(monkeypatch, capsys, "doctor", "--labels", tmp_path / "nowhere")
    assert code == 2 and "not a tunelab run directory" in said and "Traceback" not in said
