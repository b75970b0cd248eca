"""The CLI end to end on a tiny model: train -> eval -> predict (texts and files) -> export."""

from __future__ import annotations

import json
import sys

import yaml

from tests.conftest import tiny_recipe
from tests.test_errors import run_cli


def test_cli_train_eval_predict_export(tiny_bert, sentiment_csv, tmp_path, monkeypatch, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(tiny_bert, sentiment_csv, tmp_path / "run")))
    code, text = run_cli(monkeypatch, capsys, "train", recipe, "--quiet", "--max-steps", "3")
    assert code == 0 and "test" in text and "accuracy" in text and "trained" in text
    assert json.loads((tmp_path / "run" / "run.json").read_text())["steps"] == 3

    code, text = run_cli(monkeypatch, capsys, "eval", tmp_path / "run", "--data", sentiment_csv, "--json")
    assert code == 0 and json.loads(text)["n"] == 120

    out = tmp_path / "preds.jsonl"
    code, _ = run_cli(
        monkeypatch, capsys, "predict", tmp_path / "run", "a lovely film", "an awful film", "--output", out
    )
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert (
        code == 0
        and [x["text"] for x in lines] == ["a lovely film", "an awful film"]
        and lines[0]["label"] in ("pos", "neg")
    )

    out = tmp_path / "preds.csv"
    code, _ = run_cli(monkeypatch, capsys, "predict", tmp_path / "run", "--input", sentiment_csv, "--output", out)
    assert code == 0 and len(out.read_text().splitlines()) == 121

    code, _ = run_cli(monkeypatch, capsys, "export", tmp_path / "run", "--out", tmp_path / "exported")
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "exported")
    assert model.config.id2label == {0: "neg", 1: "pos"}

    code, text = run_cli(monkeypatch, capsys, "generate", tmp_path / "run", "hello")  # the registry: no generate
    assert code == 2 and "is a classification run; generate and chat need an sft or lm run" in text

    code, text = run_cli(monkeypatch, capsys, "config", "--defaults")
    assert code == 0 and "max_grad_norm" in text


def test_main_exits_zero_on_success(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["tunelab", "config", "--defaults"])
    from tunelab.cli import main

    try:
        main()
    except SystemExit as e:
        assert e.code in (0, None)


def test_a_field_of_another_family_is_one_warning_line(tmp_path):
    """`tunelab config RECIPE` with a ner field in a classification recipe: one line on stderr naming the family, no
    source line under it, and the field left out of the resolved recipe."""
    import subprocess

    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: classification\ndata:\n  tag_scheme: BIOES\n")
    done = subprocess.run([sys.executable, "-m", "tunelab.cli", "config", str(recipe)], capture_output=True, text=True)
    assert done.returncode == 0
    assert done.stderr.strip().splitlines() == [
        f"warning: {recipe}: data.tag_scheme is a field of ner, not of task classification: ignored."
    ]
    assert "tag_scheme" not in done.stdout and "task: classification" in done.stdout


def test_an_interrupted_train_prints_its_resume_command_on_one_line(tmp_path, monkeypatch, capsys):
    """stderr piped to a log is 80 columns to rich: the command to copy must still come out whole, never wrapped."""
    import pytest

    from tunelab import api
    from tunelab.cli import main
    from tunelab.training.fit import Interrupted

    def interrupted(*a, **k):
        raise Interrupted(7)

    monkeypatch.setattr(api, "train", interrupted)
    out = tmp_path / ("a-rather-long-folder-name-" * 4) / "run"
    monkeypatch.setattr(sys, "argv", ["tunelab", "train", "--dataset", "trec", "--output-dir", str(out)])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 130
    line = f"Continue with: tunelab train --resume {out}"
    assert any(line in row for row in capsys.readouterr().err.splitlines())
