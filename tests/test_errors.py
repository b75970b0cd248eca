"""Bad input gets one clear paragraph (file, line, what to do) and exit code 2 — never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import tunelab
from tests.conftest import make_sentiment, tiny_recipe, write_csv
from tunelab.cli import main
from tunelab.errors import TunelabError


def run_cli(monkeypatch, capsys, *args) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["tunelab", *map(str, args)])
    with pytest.raises(SystemExit) as e:
        main()
    captured = capsys.readouterr()
    return e.value.code, " ".join((captured.err + captured.out).split())


def train_args(tiny_bert, data, out, *extra):
    return (
        "train",
        "--model",
        tiny_bert,
        "--train",
        data,
        "--output-dir",
        out,
        "--max-steps",
        "2",
        "--quiet",
        "--set",
        "train.precision=fp32",
        *extra,
    )


CASES = {
    "missing file": (None, "file not found"),
    "not utf-8": (b"text,label\ngood film,pos\nbad \xff\xfe film,neg\n", "line 3: bytes that are not UTF-8"),
    "missing column": (b"review,label\na,pos\nb,neg\n", "no column 'text'. The file has: 'review', 'label'"),
    "empty text": (b"text,label\ngood,pos\n  ,neg\nbad,neg\n", "line 3: empty text in column 'text'"),
    "malformed line": (b"text,label\ngood,pos\nbad,neg,extra\n", "line 3: 3 fields but the header has 2"),
    "single class": (b"text,label\na,pos\nb,pos\nc,pos\nd,pos\n", "1 class (pos). A classifier needs at least two"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_training_file(case, tiny_bert, tmp_path, monkeypatch, capsys):
    content, expected = CASES[case]
    data = tmp_path / "data.csv"
    if content is not None:
        data.write_bytes(content)
    code, text = run_cli(monkeypatch, capsys, *train_args(tiny_bert, data, tmp_path / "run"))
    assert code == 2
    assert expected in text and str(data) in text
    assert "Traceback" not in text


def test_unseen_test_label(tiny_bert, tmp_path, monkeypatch, capsys):
    train = write_csv(tmp_path / "train.csv", make_sentiment(40))
    test = tmp_path / "test.csv"
    test.write_text("text,label\ngood,pos\nmeh,neutral\n")
    code, text = run_cli(monkeypatch, capsys, *train_args(tiny_bert, train, tmp_path / "run", "--test", test))
    assert code == 2 and "test.csv, line 3: label 'neutral' in the test data never occurs in training" in text


def test_cli_error_has_no_traceback_in_a_real_process(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "tunelab.cli", "train", "--train", str(tmp_path / "nope.csv")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "nope.csv: file not found" in proc.stderr and "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "runs").exists() or not any(
        (tmp_path / "runs").iterdir()
    )  # the failed run left no directory


def test_a_run_that_fails_before_its_run_json_removes_only_the_directory_it_made(tiny_bert, tmp_path, monkeypatch):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\na,x\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TUNELAB_RUNS_DIR")  # the default runs directory: ./runs
    with pytest.raises(TunelabError):  # default output directory: runs/classification-<time>
        tunelab.train(tiny_recipe(tiny_bert, bad, None), show_progress=False)
    assert list((tmp_path / "runs").iterdir()) == []
    with pytest.raises(TunelabError):
        tunelab.train(tiny_recipe(tiny_bert, bad, tmp_path / "new" / "run"), show_progress=False)
    assert not (tmp_path / "new" / "run").exists()
    (tmp_path / "mine").mkdir()  # an empty directory the user made is theirs: kept
    with pytest.raises(TunelabError):
        tunelab.train(tiny_recipe(tiny_bert, bad, tmp_path / "mine"), show_progress=False)
    assert (tmp_path / "mine").is_dir()


def test_failed_overwrite_keeps_the_earlier_run(tiny_bert, sentiment_csv, tmp_path):
    recipe = tiny_recipe(tiny_bert, sentiment_csv, tmp_path / "run")
    tunelab.train(recipe, show_progress=False)
    before = (tmp_path / "run" / "model" / "model.safetensors").read_bytes()
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\na,x\n")
    with pytest.raises(TunelabError):
        tunelab.train(tiny_recipe(tiny_bert, bad, tmp_path / "run"), overwrite=True, show_progress=False)
    assert (tmp_path / "run" / "model" / "model.safetensors").read_bytes() == before
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "completed"


def test_non_finite_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tiny_bert, sentiment_csv, tmp_path):
    import tunelab.tasks.classify.spec as heads

    original = heads.SequenceClassification.forward
    calls = {"n": 0}

    def poisoned(self, model, batch):
        calls["n"] += 1
        logits, loss = original(self, model, batch)
        return logits, loss * float("nan") if calls["n"] > 3 and model.training else loss

    recipe = tiny_recipe(tiny_bert, sentiment_csv, tmp_path / "run", train={"save_every": 1, "eval_every": 100})
    heads.SequenceClassification.forward = poisoned
    try:
        with pytest.raises(TunelabError, match="diverged at step 4.*not finite"):
            tunelab.train(recipe, show_progress=False)
    finally:
        heads.SequenceClassification.forward = original
    latest = (tmp_path / "run" / "checkpoints" / "latest").read_text().strip()
    assert latest == "step-0000003"
    from safetensors.torch import load_file

    assert all(
        torch.isfinite(t).all()
        for t in load_file(tmp_path / "run" / "checkpoints" / latest / "model.safetensors").values()
    )
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "failed"
