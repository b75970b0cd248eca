"""The real NER test: the bundled MiniLM-L6 learns entities from 500 real WNUT-16 tweets."""

from __future__ import annotations

import pytest
import torch

import tunelab


@pytest.fixture
def one_thread():
    """One torch thread: on a shared 2-core machine two threads per process slow training 3x (spinning workers)."""
    before = torch.get_num_threads()
    yield 1
    torch.set_num_threads(before)


@pytest.mark.real
def test_minilm_learns_wnut16_entities(tmp_path, one_thread):
    run = tunelab.train(
        {"task": "ner"},
        show_progress=False,
        overrides={
            "data.limit": 500,
            "train.epochs": 4,
            "train.batch_size": 16,
            "optim.lr": 3e-4,
            "train.eval_every": 1000,
            "train.num_threads": one_thread,
            "train.output_dir": str(tmp_path / "run"),
            "eval.patience": None,
        },
    )
    test = run.metrics["test"]
    assert run.info["data"]["train"] == 500 and test["n"] >= 200 and test["entities"] > 100
    # the all-O baseline scores 0. Calibration (this machine, bf16): 0.26 test / 0.21 validation F1 after these
    # 128 steps; 300 tweets x 5 epochs at lr 2e-4 reach only 0.10; HF Trainer: 0.44 after 3 epochs on ~1,900.
    assert test["f1"] >= 0.12, test
    assert test["per_type"]["person"]["f1"] > 0  # the most frequent type is found
    text = "Barack Obama and Justin Bieber landed in New York tonight"
    spans = tunelab.load(run.dir).predict(text)[0]
    assert any(
        s["type"] == "person"
        and text[s["start"] : s["end"]] in ("Barack", "Obama", "Barack Obama", "Justin", "Bieber", "Justin Bieber")
        for s in spans
    ), spans
