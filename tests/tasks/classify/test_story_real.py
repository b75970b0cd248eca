"""The one real test: the bundled MiniLM-L6 learns sentiment from ~500 real movie-review snippets."""

from __future__ import annotations

import pytest

import tunelab


@pytest.mark.real
def test_minilm_learns_movie_review_sentiment(tmp_path):
    run = tunelab.train(
        None,
        show_progress=False,
        overrides={
            "data.limit": 500,
            # one validation (at the end) on 3% of the data: half of this test's time went to evaluating 1,056
            # validation snippets after every epoch; the test split keeps its 10% (1,056 snippets)
            "data.validation_fraction": 0.03,
            "train.eval_every": 1000,
            "train.epochs": 3,
            "train.batch_size": 16,
            "optim.lr": 1e-4,
            "train.precision": "fp32",
            "train.output_dir": str(tmp_path / "run"),
            "eval.patience": None,
        },
    )
    test = run.metrics["test"]
    assert run.info["data"]["train"] == 500 and test["n"] >= 500
    majority = max(c["support"] for c in test["per_class"].values()) / test["n"]
    # calibration: HF Trainer reaches 0.77 here after 2 epochs at lr 1e-4; 300 snippets x 1 epoch learn nothing
    assert test["accuracy"] >= majority + 0.15, (test["accuracy"], majority)
    clf = tunelab.load(run.dir)
    assert clf.predict(["a wonderful, moving and beautifully acted film"])[0]["label"] == "positive"
    assert clf.predict(["a dull, tedious and badly written mess"])[0]["label"] == "negative"
