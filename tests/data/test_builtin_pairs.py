"""Built-in source -> target datasets: ACLSum (summarization) and French -> English Bible verses (translation)."""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import pytest

from tunelab.data.builtin import (
    BIBLE_TEST_BOOKS,
    BIBLE_VALIDATION_BOOKS,
    PAIR_LANGUAGES,
    PAIR_PROMPTS,
    aclsum,
    bible_fr_en,
    load_builtin,
)
from tunelab.errors import TunelabError

ACLSUM_FILES = {"train": "train.jsonl", "validation": "val.jsonl", "test": "test.jsonl"}


@pytest.fixture(scope="module")
def acl():
    return aclsum()[0]


@pytest.fixture(scope="module")
def bible():
    return bible_fr_en()[0]


def test_aclsum_is_750_pairs_with_the_package_splits(acl):
    assert len(acl) == 750
    assert Counter(r["split"] for r in acl) == {"train": 300, "validation": 150, "test": 300}
    aspects = defaultdict(set)
    for r in acl:
        aspects[(r["split"], r["line"])].add(r["aspect"])
        assert r["source_file"].endswith(ACLSUM_FILES[r["split"]])
    assert len(aspects) == 250
    assert all(a == {"challenge", "approach", "outcome"} for a in aspects.values())


def test_aclsum_text_is_detokenised_and_never_empty(acl):
    for r in acl:
        assert r["source"].strip() and r["target"].strip()
        assert r["source"].startswith(r["title"] + "\n\n")
        for text in (r["source"], r["target"]):
            assert " ," not in text and " )" not in text and "( " not in text and " n't" not in text
    first = acl[0]  # P06-1112, the first line of train.jsonl
    assert first["line"] == 1 and first["aspect"] == "challenge"
    assert "Question Answering (QA)." in first["source"] and "up to 20% in MRR." in first["source"]


def test_bible_splits_hold_whole_books(bible):
    books = defaultdict(set)
    for r in bible:
        books[r["book"]].add(r["split"])
    assert all(len(s) == 1 for s in books.values()), {b: s for b, s in books.items() if len(s) > 1}
    assert {b for b, s in books.items() if s == {"test"}} == set(BIBLE_TEST_BOOKS)
    assert {b for b, s in books.items() if s == {"validation"}} == set(BIBLE_VALIDATION_BOOKS)
    sizes = Counter(r["split"] for r in bible)
    assert 250 <= sizes["test"] <= 300
    assert 130 <= sizes["validation"] <= 170
    assert sizes["train"] > 25_000
    assert 19 not in books  # Psalms: left out, its verse pairs are shifted


def test_bible_pairs_are_french_to_english_and_clean(bible):
    for r in bible:
        assert r["source"].strip() and r["target"].strip()
        assert "`" not in r["target"] and "[" not in r["target"] and "dummy verses" not in r["target"]
        assert not re.search(r"\(\d+:\d+", r["source"]) and not r["source"].endswith(" -")  # LSG marks stripped
    genesis = next(r for r in bible if (r["book"], r["chapter"], r["verse"]) == (1, 1, 1))
    assert genesis["split"] == "train"
    assert genesis["source"].startswith("Au commencement")
    assert genesis["target"].startswith("In the beginning")
    assert genesis["line"] is None and genesis["source_file"].endswith("bible.db")
    assert PAIR_LANGUAGES["bible_fr_en"] == ("fr", "en") and "bible_fr_en" not in PAIR_PROMPTS


def test_bible_train_order_is_a_deterministic_sample(bible):
    again = bible_fr_en()[0]
    key = [(r["book"], r["chapter"], r["verse"]) for r in bible]
    assert key == [(r["book"], r["chapter"], r["verse"]) for r in again]
    assert [r["split"] for r in bible[:300]] == ["train"] * 300
    assert len({r["book"] for r in bible[:300]}) >= 30  # a prefix samples many books, not Genesis 1


def test_pairs_through_load_builtin():
    assert len(load_builtin("aclsum", "pairs")[0]) == 750
    assert PAIR_PROMPTS["aclsum"].format(aspect="outcome", source="S").endswith("\n\nS")
    with pytest.raises(TunelabError, match="Unknown built-in pairs dataset 'nope'. Built-in: aclsum, bible_fr_en"):
        load_builtin("nope", "pairs")
    with pytest.raises(TunelabError, match="Unknown built-in labelled dataset 'aclsum'"):
        load_builtin("aclsum")
