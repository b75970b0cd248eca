"""Run directories written by earlier versions keep loading: run.json is the contract, not the code that wrote it.

tests/fixtures/runs/<version>/ holds small runs (tiny random models) written by that version of tunelab
(tests/fixtures/make_old_runs.py). Every later version must load, predict, evaluate and export them with the same
numbers: the values below were read from the fixtures with the version that wrote them.
"""

from __future__ import annotations

import pytest
import torch

import tunelab
from tests.conftest import ROOT
from tunelab.errors import TunelabError

V010 = ROOT / "tests" / "fixtures" / "runs" / "v0.1.0"
TOL = 1e-6


def test_classification_run_of_v010_predicts_and_evaluates_the_same():
    clf = tunelab.load(V010 / "classification")
    pred = clf.predict(["good great film", "awful boring plot"])
    assert [p["label"] for p in pred] == ["pos", "pos"]
    assert pred[0]["scores"]["pos"] == pytest.approx(0.5005838871002197, abs=TOL)
    assert pred[1]["scores"]["neg"] == pytest.approx(0.49941468238830566, abs=TOL)
    m = tunelab.evaluate(V010 / "classification", V010 / "data" / "sentiment.csv")
    assert m["n"] == 60 and m["accuracy"] == pytest.approx(0.5333333333333333)
    assert m["loss"] == pytest.approx(0.6930701573689778, abs=TOL) and m["f1_macro"] == pytest.approx(
        0.3478260869565218
    )


def test_ner_run_of_v010_finds_the_same_spans_and_scores():
    tagger = tunelab.load(V010 / "ner")
    spans = tagger.predict(["Alice Smith met Bob in Paris today"])[0]
    assert [(s["text"], s["type"], s["start"], s["end"]) for s in spans] == [
        ("Alice", "person", 0, 5),
        ("Smith met Bob", "person", 6, 19),
        ("today", "geo-loc", 29, 34),
    ]
    assert [s["score"] for s in spans] == pytest.approx([0.2176, 0.2151, 0.2115], abs=1e-4)
    m = tunelab.evaluate(V010 / "ner", V010 / "data" / "ner.jsonl")
    assert m["n"] == 60 and m["entities"] == 120 and m["predicted_entities"] == 231
    assert m["f1"] == pytest.approx(0.05698005698005698) and m["loss"] == pytest.approx(1.5979179920497277, abs=TOL)


def test_sft_run_of_v010_generates_the_same_and_refuses_eval_clearly():
    gen = tunelab.load(V010 / "sft")
    assert gen.generate(["What is H2O?"], max_new_tokens=4) == [".__.__.__.__"]
    with pytest.raises(TunelabError, match="tunelab generate"):
        tunelab.evaluate(V010 / "sft", V010 / "data" / "chats.jsonl")


@pytest.mark.parametrize(
    "task,auto",
    [
        ("classification", "AutoModelForSequenceClassification"),
        ("ner", "AutoModelForTokenClassification"),
        ("sft", "AutoModelForCausalLM"),
    ],
)
def test_v010_runs_export_to_plain_transformers_with_the_same_logits(task, auto, tmp_path):
    import transformers

    out = tunelab.export(V010 / task, tmp_path / "exported")
    cls = getattr(transformers, auto)
    exported, served = (
        cls.from_pretrained(out).eval(),
        tunelab.load(V010 / task).model,
    )  # what tunelab itself predicts with
    tok = transformers.AutoTokenizer.from_pretrained(out)
    ids = tok(["Alice met Bob in Paris"], return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        assert torch.equal(exported(input_ids=ids).logits, served(input_ids=ids).logits)
    if task == "sft":
        assert tok.chat_template  # the chat template travels with the model
