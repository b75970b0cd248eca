"""Entity metrics agree with seqeval (strict IOB2) and count words, not sub-tokens."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2

from tests.tasks.ner.test_data import LONG_WORD, TYPES, random_iob2
from tunelab.data.tags import spans
from tunelab.tasks.ner.data import TagSpace, collate, encode
from tunelab.tasks.ner.metrics import EntityMetrics, WordOutputs

SPACE = TagSpace(TYPES)


def scored(gold: list[list[str]], pred: list[list[str]]) -> dict:
    """Our metrics on sentences of tags, sentence by sentence, the state reduced in two halves (as two processes)."""
    ids = SPACE.label2id
    halves = []
    for part in (slice(0, len(gold) // 2), slice(len(gold) // 2, None)):
        m = EntityMetrics(SPACE.names)
        for g, p in zip(gold[part], pred[part]):
            m.add(np.array([ids[t] for t in g]), np.array([ids[t] for t in p]), np.zeros(len(g), dtype=int))
        halves.append(m.state())
    total = EntityMetrics(SPACE.names)
    total.load_state(halves[0] + halves[1])
    return total.compute()


def seqeval_report(gold, pred) -> dict:
    return classification_report(gold, pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)


def noisy(rng: random.Random, tags: list[str]) -> list[str]:
    """A prediction: the gold tags with random errors, including invalid I- tags that strict mode ignores."""
    out = list(tags)
    for i in range(len(out)):
        if rng.random() < 0.25:
            out[i] = rng.choice(["O", "I-person", "B-person", "I-geo-loc", "B-product", "I-product"])
    return out


@pytest.mark.parametrize("seed", range(3))
def test_random_sentences_match_seqeval(seed):
    rng = random.Random(seed)
    gold = [random_iob2(rng, rng.randint(1, 15)) for _ in range(60)]
    pred = [noisy(rng, g) for g in gold]
    ours, ref = scored(gold, pred), seqeval_report(gold, pred)
    assert ours["precision"] == pytest.approx(ref["micro avg"]["precision"])
    assert ours["recall"] == pytest.approx(ref["micro avg"]["recall"])
    assert ours["f1"] == pytest.approx(ref["micro avg"]["f1-score"])
    assert ours["f1_macro"] == pytest.approx(ref["macro avg"]["f1-score"])
    assert ours["precision_macro"] == pytest.approx(ref["macro avg"]["precision"])
    for t in TYPES:
        if t in ref:
            assert ours["per_type"][t]["f1"] == pytest.approx(ref[t]["f1-score"])
            assert ours["per_type"][t]["support"] == ref[t]["support"]
    flat_g, flat_p = sum(gold, []), sum(pred, [])
    assert ours["accuracy"] == pytest.approx(np.mean([a == b for a, b in zip(flat_g, flat_p)]))


def test_hand_built_cases():
    gold = [["B-person", "I-person", "O", "B-geo-loc"], ["O", "B-product", "I-product"], ["B-person", "B-person"]]
    pred = [
        ["B-person", "I-person", "O", "O"],  # one right, one missed
        ["O", "I-product", "I-product"],  # strict IOB2: no entity (I- without B-)
        ["B-person", "I-person"],
    ]  # one wrong span covering both
    m = scored(gold, pred)
    # gold 5 entities; predicted 2 (B-person I-person twice); correct 1
    assert (m["entities"], m["predicted_entities"]) == (5, 2)
    assert m["precision"] == pytest.approx(1 / 2) and m["recall"] == pytest.approx(1 / 5)
    assert m["f1"] == pytest.approx(2 * 0.5 * 0.2 / 0.7)
    assert m["per_type"]["person"] == {
        "precision": 0.5,
        "recall": pytest.approx(1 / 3),
        "f1": pytest.approx(0.4),
        "support": 3,
    }
    assert m["per_type"]["product"]["support"] == 1 and m["per_type"]["product"]["f1"] == 0.0
    assert m["f1_macro"] == pytest.approx(seqeval_report(gold, pred)["macro avg"]["f1-score"])


def test_a_word_of_many_sub_tokens_counts_once(tiny_bert):
    """Sub-token predictions must not turn into several entities or several words."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_bert)
    rec = {"tokens": ["Ask", LONG_WORD, "now"], "tags": ["O", "B-person", "O"]}
    batch = collate(encode([rec], SPACE, tok, 64, 8, label_all=True), tok.pad_token_id)
    n_pos = batch["input_ids"].shape[1]
    assert n_pos > 10
    # the model says B-person on *every* sub-token of the long word (and of everything else)
    logits = torch.zeros(1, n_pos, len(SPACE.names))
    logits[..., SPACE.label2id["B-person"]] = 5.0
    outputs = WordOutputs(logits, batch["word_pos"], batch["labels"], batch["word_sentence"])
    m = EntityMetrics(SPACE.names)
    m.update(outputs)
    r = m.compute()
    assert r["entities"] == 1 and r["predicted_entities"] == 3  # one per word, never one per sub-token
    assert r["per_type"]["person"]["precision"] == pytest.approx(1 / 3) and r["recall"] == 1.0
    assert int(np.sum(r["confusion_matrix"])) == 3
    assert spans(["B-person"] * 3) == [("person", 0, 1), ("person", 1, 2), ("person", 2, 3)]
