"""data.augment and data.few_shot: deterministic for a seed, training examples only, the stated number of copies;
each EDA operation on a known sentence (synonyms from WordNet 3.0), AEDA's marks; the few-shot draw."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

import tunelab
from tests.conftest import make_sentiment, tiny_recipe, write_csv
from tunelab.augment import augment
from tunelab.augment.aeda import MARKS, aeda
from tunelab.augment.eda import delete, insert, swap, synonym
from tunelab.augment.wordnet import synonyms
from tunelab.config import load_config
from tunelab.data.splits import draw
from tunelab.tasks.classify.config import AugmentConfig

SENTENCE = "the movie was a wonderful surprise with brilliant actors and a clever story".split()


def test_wordnet_3_0_offline():
    assert {"movie", "flick", "picture"} <= set(synonyms("film")) and "film" not in synonyms("film")
    assert synonyms("zzyzx") == ()


def test_each_eda_operation_on_a_known_sentence():
    rng = random.Random(0)
    replaced = synonym(SENTENCE, 0.2, rng)
    changed = [(a, b) for a, b in zip(SENTENCE, replaced) if a != b]
    assert len(replaced) == len(SENTENCE) and len(changed) == round(0.2 * len(SENTENCE))
    assert all(b in synonyms(a) for a, b in changed)  # every replacement is a WordNet synonym of its word
    inserted = insert(SENTENCE, 0.2, rng)
    assert len(inserted) == len(SENTENCE) + round(0.2 * len(SENTENCE))  # 3 insertions
    extra = Counter(inserted) - Counter(SENTENCE)
    assert all(any(w in synonyms(s) for s in SENTENCE) for w in extra)  # each a synonym of a word of the sentence
    swapped = swap(SENTENCE, 0.2, rng)
    assert sorted(swapped) == sorted(SENTENCE) and swapped != SENTENCE  # the same multiset of words
    assert delete(["one"], 1.0, rng) == ["one"] and delete(SENTENCE, 1.0, rng)  # never empties a text
    assert len(delete(SENTENCE, 0.5, random.Random(3))) < len(SENTENCE)


def test_aeda_only_adds_marks():
    marked = aeda(" ".join(SENTENCE), 1 / 3, random.Random(1)).split()
    assert [w for w in marked if w not in MARKS] == SENTENCE and 1 <= len(marked) - len(SENTENCE) <= 4


def test_augment_is_deterministic_and_adds_the_stated_copies():
    records = [
        {"text": " ".join(SENTENCE), "label": "pos", "line": 2},
        {"text": "a dull film", "label": "neg", "line": 3},
    ]
    cfg = AugmentConfig(method="eda", copies=3)
    out, added = augment(records, cfg, seed=7)
    assert added == 6 and len(out) == 8 and [r["label"] for r in out] == ["pos"] * 4 + ["neg"] * 4
    assert out == augment(records, cfg, seed=7)[0] and out != augment(records, cfg, seed=8)[0]
    assert [r["augmentation"] for r in out[1:4]] == ["eda synonym", "eda insert", "eda swap"]
    assert augment(records, AugmentConfig(), seed=7) == (records, 0)


def test_a_run_augments_its_training_split_only(tiny_bert, sentiment_csv, tmp_path):
    plain = tunelab.train(tiny_recipe(tiny_bert, sentiment_csv, tmp_path / "plain", train={"max_steps": 2}),
                          show_progress=False)  # fmt: skip
    recipe = tiny_recipe(tiny_bert, sentiment_csv, tmp_path / "aug", train={"max_steps": 2},
                         data={"augment": {"method": "aeda", "copies": 2}})  # fmt: skip
    augmented = tunelab.train(recipe, show_progress=False)
    a, p = augmented.info["data"], plain.info["data"]
    assert (a["validation"], a["test"]) == (p["validation"], p["test"])  # held-out data untouched
    assert a["augmented"] == 2 * p["train"] and a["train"] == 3 * p["train"] and p["augmented"] == 0


def test_few_shot_draws_n_stratified_and_n_more_to_validate(tmp_path):
    data = write_csv(tmp_path / "d.csv", make_sentiment(200))
    cfg = load_config({"data": {"train": str(data), "few_shot": 20}})
    from tunelab.tasks.classify.data import read_records

    splits = read_records(cfg)
    full = read_records(load_config({"data": {"train": str(data)}}))
    assert len(splits.train) == len(splits.validation) == 20 and splits.test == full.test
    assert not {r["text"] for r in splits.train} & {r["text"] for r in splits.validation}
    pool = Counter(r["label"] for r in full.train + full.validation)
    share = pool["pos"] / sum(pool.values())
    assert abs(Counter(r["label"] for r in splits.train)["pos"] - 20 * share) <= 1  # stratified
    assert read_records(cfg).train == splits.train  # seeded
    picked, rest = draw(list(range(10)), 3, 0, ["a"] * 8 + ["b"] * 2)
    assert len(picked) == 3 and sorted(picked + rest) == list(range(10)) and any(i >= 8 for i in picked)
    assert json.dumps(cfg.data.augment.model_dump())  # (the default: no augmentation)


def test_paraphrases_are_generated_once_then_read_from_the_cache(tiny_llama, monkeypatch):
    from tunelab.augment import paraphrase

    cfg = AugmentConfig(method="paraphrase", copies=2, paraphrase={"model": str(tiny_llama), "max_new_tokens": 6})
    records = [{"text": "a wonderful film", "label": "pos", "line": 2}, {"text": "dull and long", "label": "neg",
                                                                         "line": 3}]  # fmt: skip
    out, added = augment(records, cfg, seed=1)
    assert added == 4 and [r.get("augmentation") for r in out] == [None, "paraphrase", "paraphrase"] * 2
    assert all(isinstance(r["text"], str) and r["text"] for r in out)

    def no_generator(name):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(paraphrase, "_generator", no_generator)
    assert augment(records, cfg, seed=1)[0] == out  # the second run reads the cache
    with pytest.raises(AssertionError, match="cache was not used"):
        augment(records, cfg, seed=2)  # another seed is another key


def test_generating_paraphrases_leaves_the_training_seed_alone(tiny_llama, tmp_path, monkeypatch):
    # a first run generates, a second reads the cache: both must then initialise and shuffle the same
    import torch

    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path))
    cfg = AugmentConfig(method="paraphrase", copies=2, paraphrase={"model": str(tiny_llama), "max_new_tokens": 4})
    records = [{"text": "a fine film", "label": "pos", "line": 2}]
    draws = []
    for _ in range(2):  # generated, then read from the cache
        torch.manual_seed(0)
        augment(records, cfg, seed=3)
        draws.append(torch.rand(4))
    assert torch.equal(draws[0], draws[1])


def test_a_killed_generation_goes_on_from_its_finished_passes(tiny_llama, tmp_path, monkeypatch):
    from tunelab.augment import paraphrase

    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path))
    monkeypatch.setattr(paraphrase, "CHUNK", 2)  # 3 texts x 2 copies: 3 passes of 2 prompts
    cfg = AugmentConfig(method="paraphrase", copies=2, paraphrase={"model": str(tiny_llama), "max_new_tokens": 5})
    records = [{"text": t, "label": "pos", "line": i + 2} for i, t in enumerate(["one good film", "bad", "so long"])]
    real, calls = paraphrase._generator, []

    def counting(name, kill_at=None):
        g = real(name)
        generate = g.generate

        def counted(prompts, **kw):
            calls.append(len(prompts))
            if len(calls) == kill_at:
                raise KeyboardInterrupt  # killed in the middle of the second pass
            return generate(prompts, **kw)

        g.generate = counted
        return g

    monkeypatch.setattr(paraphrase, "_generator", lambda name: counting(name, kill_at=2))
    with pytest.raises(KeyboardInterrupt):
        augment(records, cfg, seed=5)
    assert len(list(tmp_path.glob("paraphrases/*.partial.jsonl"))) == 1  # the first pass was kept
    calls.clear()
    monkeypatch.setattr(paraphrase, "_generator", counting)
    resumed = augment(records, cfg, seed=5)[0]
    assert calls == [2, 2]  # only the two passes it did not have
    assert not list(tmp_path.glob("paraphrases/*.partial.jsonl"))
    for f in tmp_path.glob("paraphrases/*.json"):
        f.unlink()
    calls.clear()
    assert augment(records, cfg, seed=5)[0] == resumed and calls == [2, 2, 2]  # a whole generation writes the same
