"""Error analysis: the bounded heap keeps exactly the highest-loss examples, across processes too; a run's errors.csv
and confusions.md hold what they say."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

import tunelab
from tests.conftest import tiny_recipe
from tunelab.tasks.classify.errors import KEEP, ErrorAnalysis


def stream(n=1000, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, classes, generator=g) * 3, torch.randint(0, classes, (n,), generator=g)


def feed(analysis, logits, labels, index, batch=64):
    for s in range(0, len(index), batch):
        i = index[s : s + batch]
        analysis.update(logits[i], labels[i], i)


def test_heap_keeps_the_highest_losses_and_two_processes_gather_the_same():
    logits, labels = stream()
    lengths = np.random.default_rng(0).integers(3, 700, len(labels))
    loss = torch.nn.functional.cross_entropy(logits, labels, reduction="none").numpy()
    top = sorted(range(len(loss)), key=lambda i: -loss[i])[:KEEP]

    one = ErrorAnalysis("classification", ["a", "b", "c"], lengths)
    feed(one, logits, labels, np.arange(len(labels)))
    one.load_state(one.state())
    assert [i for _, i, _ in one.worst()] == top
    assert [v for v, _, _ in one.worst()] == pytest.approx(loss[top], abs=1e-5)

    # two processes, each every other example: the summed states gather the same worst examples and counts
    ranks = [ErrorAnalysis("classification", ["a", "b", "c"], lengths, rank=r, world=2) for r in (0, 1)]
    for r, a in enumerate(ranks):
        feed(a, logits, labels, np.arange(r, len(labels), 2))
    total = ranks[0].state() + ranks[1].state()
    ranks[0].load_state(total)
    assert [i for _, i, _ in ranks[0].worst()] == top
    assert ranks[0].by_length() == one.by_length()
    n = sum(b["n"] for b in one.by_length())
    assert n == 1000 and sum(b["accuracy"] * b["n"] for b in one.by_length()) == pytest.approx(
        float((logits.argmax(-1) == labels).sum()), abs=1e-6
    )
    assert [b["tokens"] for b in one.by_length()] == ["1-16", "17-32", "33-64", "65-128", "129-256", "257-512", ">512"]


def test_run_errors_csv_and_confusions(tiny_bert, sentiment_csv, tmp_path):
    run = tunelab.train(tiny_recipe(tiny_bert, sentiment_csv, tmp_path / "run", train={"max_steps": 12}),
                        show_progress=False)  # fmt: skip
    test = run.metrics["test"]
    errors = list(csv.DictReader(open(run.dir / "errors.csv", encoding="utf-8")))
    assert len(errors) == test["n"]  # fewer than 200 test examples: all of them
    predicted = tunelab.load(run.dir).predict([e["text"] for e in errors])
    for e, p in zip(errors, predicted):
        assert e["prediction"] == p["label"]
        assert float(e["probability"]) == pytest.approx(p["scores"][p["label"]], abs=1e-3)
        assert float(e["loss"]) == pytest.approx(-math.log(p["scores"][e["label"]]), abs=1e-3)
    assert [float(e["loss"]) for e in errors] == sorted((float(e["loss"]) for e in errors), reverse=True)
    m = np.asarray(test["confusion_matrix"])
    md = (run.dir / "confusions.md").read_text()
    names = test["labels"]
    for i in range(2):
        if m[i, 1 - i]:
            assert f"| {names[i]} | {names[1 - i]} | {m[i, 1 - i]} |" in md
    assert sum(b["n"] for b in run.metrics["by_length"]) == test["n"]
