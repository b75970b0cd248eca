"""NER data: tag schemes, readers and their errors, sub-word alignment, windows and the merge back to words."""

from __future__ import annotations

import json
import random

import pytest
import torch

from tunelab.config import load_config
from tunelab.data import IGNORE
from tunelab.data.tags import repair, spans, split_tag, tags_from_spans, to_iob2
from tunelab.errors import TunelabError
from tunelab.tasks.ner.data import TagSpace, collate, encode, read_tagged_file, windows, words_with_offsets
from tunelab.tasks.ner.metrics import EntityMetrics, WordOutputs

TYPES = ["geo-loc", "person", "product"]


def from_iob2(tags: list[str], scheme: str) -> list[str]:
    """IOB2 -> `scheme`: the inverse of `to_iob2` on valid sequences (only these tests need this direction)."""
    if scheme == "IOB2":
        return list(tags)
    out = []
    for i, tag in enumerate(tags):
        p, t = split_tag(tag)
        if p == "O":
            out.append("O")
            continue
        prev_p, prev_t = split_tag(tags[i - 1]) if i else ("O", "")
        next_p, next_t = split_tag(tags[i + 1]) if i + 1 < len(tags) else ("O", "")
        continues = next_p == "I" and next_t == t
        if scheme == "IOB1":
            out.append(f"B-{t}" if p == "B" and prev_p != "O" and prev_t == t else f"I-{t}")
        else:  # BIOES
            out.append(f"{('S', 'B')[continues]}-{t}" if p == "B" else f"{('E', 'I')[continues]}-{t}")
    return out


def random_iob2(rng: random.Random, n: int) -> list[str]:
    """A valid IOB2 sequence of n words with random entities (adjacent same-type entities included)."""
    tags, i = [], 0
    while i < n:
        if rng.random() < 0.4:
            t, length = rng.choice(TYPES), rng.randint(1, 3)
            tags += [f"B-{t}"] + [f"I-{t}"] * (length - 1)
            i += length
        else:
            tags.append("O")
            i += 1
    return tags[:n]


@pytest.fixture(scope="module")
def tokenizer(tiny_bert):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_bert)


# ------------------------------------------------------------------ tag schemes


def test_scheme_conversions_known_cases():
    iob2 = ["B-person", "I-person", "B-person", "O", "B-geo-loc", "O", "I-product"]
    assert from_iob2(iob2[:6], "IOB1") == ["I-person", "I-person", "B-person", "O", "I-geo-loc", "O"]
    assert from_iob2(iob2[:6], "BIOES") == ["B-person", "E-person", "S-person", "O", "S-geo-loc", "O"]
    assert to_iob2(["I-person", "I-person", "B-person", "O", "I-geo-loc"], "IOB1") == [
        "B-person",
        "I-person",
        "B-person",
        "O",
        "B-geo-loc",
    ]
    assert to_iob2(["B-person", "I-person", "E-person", "S-geo-loc"], "BIOES") == [
        "B-person",
        "I-person",
        "I-person",
        "B-geo-loc",
    ]
    assert repair(["O", "I-person", "I-person", "B-geo-loc", "I-person"]) == (
        ["O", "B-person", "I-person", "B-geo-loc", "B-person"],
        [1, 4],
    )


@pytest.mark.parametrize("scheme", ["IOB1", "BIOES", "IOB2"])
def test_scheme_round_trips(scheme):
    rng = random.Random(0)
    for _ in range(300):
        tags = random_iob2(rng, rng.randint(1, 12))
        converted = from_iob2(tags, scheme)
        assert to_iob2(converted, scheme) == tags
        assert repair(to_iob2(converted, scheme))[1] == []
        assert tags_from_spans(len(tags), spans(tags)) == tags


# ------------------------------------------------------------------ readers


def ner_config(tmp_path, **data):
    return load_config({"task": "ner", "data": data})


def test_conll_two_and_four_columns_and_docstart(tmp_path):
    two = tmp_path / "two.conll"
    two.write_text("Empire\tB-facility\nState\tI-facility\n\t\nhi\tO\nParis\tB-geo-loc\n\n\n")
    four = tmp_path / "four.txt"
    four.write_text(
        "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n\nPeter NNP B-NP B-PER\n"
    )
    cfg = ner_config(tmp_path)
    a = read_tagged_file(two, cfg)
    assert [r["tokens"] for r in a] == [["Empire", "State"], ["hi", "Paris"]]
    assert [r["tags"] for r in a] == [["B-facility", "I-facility"], ["O", "B-geo-loc"]]
    assert [r["line"] for r in a] == [1, 4]
    b = read_tagged_file(four, cfg)
    assert [r["tokens"] for r in b] == [["EU", "rejects", "German"], ["Peter"]]
    assert b[0]["tags"] == ["B-ORG", "O", "B-MISC"] and b[1]["line"] == 7


def test_iob1_and_bioes_files_become_iob2(tmp_path):
    iob1 = tmp_path / "a.conll"
    iob1.write_text("John I-PER\nSmith I-PER\nAnn B-PER\nin O\nRome I-LOC\n")
    assert read_tagged_file(iob1, ner_config(tmp_path, tag_scheme="IOB1"))[0]["tags"] == [
        "B-PER",
        "I-PER",
        "B-PER",
        "O",
        "B-LOC",
    ]
    bioes = tmp_path / "b.jsonl"
    bioes.write_text(
        json.dumps({"tokens": ["John", "Smith", "in", "Rome"], "tags": ["B-PER", "E-PER", "O", "S-LOC"]}) + "\n"
    )
    assert read_tagged_file(bioes, ner_config(tmp_path, tag_scheme="BIOES"))[0]["tags"] == [
        "B-PER",
        "I-PER",
        "O",
        "B-LOC",
    ]


def test_jsonl_text_with_character_entities(tmp_path):
    text = "Zürich's mayor met José Álvarez-Núñez in 東京!"
    ents = [{"start": 0, "end": 6, "type": "geo-loc"}, {"start": 19, "end": 37, "type": "person"}, [41, 43, "geo-loc"]]
    f = tmp_path / "e.jsonl"
    f.write_text(json.dumps({"text": text, "entities": ents}, ensure_ascii=False) + "\n")
    r = read_tagged_file(f, ner_config(tmp_path))[0]
    assert r["tokens"] == ["Zürich", "'s", "mayor", "met", "José", "Álvarez-Núñez", "in", "東京", "!"]
    assert r["tags"] == ["B-geo-loc", "O", "O", "O", "B-person", "I-person", "O", "B-geo-loc", "O"]


def test_words_with_offsets_point_into_the_text():
    text = "RT @Suzie55: Obama's #NFL pick!! see http://bit.ly/x — naïve café, 東京…"
    words = words_with_offsets(text)
    assert all(text[s:e] == w for w, s, e in words)
    assert [w for w, _, _ in words][:8] == ["RT", "@Suzie55", ":", "Obama", "'s", "#NFL", "pick", "!"]
    assert "http://bit.ly/x" in [w for w, _, _ in words] and "naïve" in [w for w, _, _ in words]


BAD_INPUT = [
    (
        "bad.conll",
        "John B-PER\nsmiles X-PER\n",
        {},
        r"bad.conll, line 2: tag 'X-PER' is not in the declared scheme IOB2",
    ),
    ("bad.conll", "John S-PER\n", {}, r"line 1: tag 'S-PER' is not in the declared scheme IOB2"),
    ("bad.conll", "John B-PER\n\nsmiles\n", {}, r"bad.conll, line 3: 'smiles' has no tag column"),
    (
        "bad.jsonl",
        '{"tokens": ["a"], "tags": ["O"]}\n{"tokens": ["a", "b"], "tags": ["O"]}\n',
        {},
        r"bad.jsonl, line 2: 2 tokens but 1 tags",
    ),
    ("bad.jsonl", '{"tokens": [], "tags": []}\n', {}, r"bad.jsonl, line 1: empty sentence"),
    ("bad.jsonl", '{"text": "  ", "entities": []}\n', {}, r"bad.jsonl, line 1: empty sentence"),
    ("bad.jsonl", '{"words": ["a"], "tags": ["O"]}\n', {}, r"bad.jsonl: ner data needs a 'tokens' column"),
    ("bad.jsonl", '{"tokens": ["a"], "labels": ["O"]}\n', {}, r"bad.jsonl: no column 'tags'"),
    (
        "bad.jsonl",
        '{"text": "hi Bob", "entities": [{"start": 3, "end": 9, "type": "person"}]}\n',
        {},
        r"bad.jsonl, line 1: entity .* 0 <= start < end <= 6",
    ),
    (
        "bad.conll",
        "in O\nRome I-LOC\n",
        {"strict_tags": True},
        r"bad.conll, line 2: 'I-LOC' after 'O' does not continue an entity",
    ),
]


@pytest.mark.parametrize("name,content,data,message", BAD_INPUT)
def test_bad_input_names_file_and_line(tmp_path, name, content, data, message):
    f = tmp_path / name
    f.write_text(content)
    with pytest.raises(TunelabError, match=message):
        read_tagged_file(f, ner_config(tmp_path, **data))


def test_i_after_o_is_repaired_with_a_warning(tmp_path):
    f = tmp_path / "a.conll"
    f.write_text("in O\nRome I-LOC\nand O\nParis I-LOC\n")
    with pytest.warns(UserWarning, match="repaired 2 I- tag"):
        r = read_tagged_file(f, ner_config(tmp_path))[0]
    assert r["tags"] == ["O", "B-LOC", "O", "B-LOC"] and r["repaired"] == 2


def test_ner_defaults_to_wnut16_and_classification_to_movie_reviews():
    assert load_config({"task": "ner"}).data.dataset == "wnut16"
    assert load_config({}).data.dataset == "movie_reviews"
    assert load_config({"task": "ner", "data": {"dataset": "my"}}).data.dataset == "my"


# ------------------------------------------------------------------ alignment, windows, merge back

SPACE = TagSpace(["facility", "person"])
LONG_WORD = "Pneumonoultramicroscopicsilicovolcanoconiosis"


def test_first_sub_token_is_labelled_the_rest_ignored(tokenizer):
    rec = {"tokens": ["Empire", LONG_WORD, "lights", "up"], "tags": ["B-facility", "I-facility", "O", "O"]}
    pieces = [len(tokenizer(w, add_special_tokens=False)["input_ids"]) for w in rec["tokens"]]
    assert pieces[1] > 5  # one word, many sub-tokens
    row = encode([rec], SPACE, tokenizer, 64, 8)[0]
    assert len(row["input_ids"]) == 1
    labels, word_pos = row["labels"][0], row["word_pos"][0]
    ids = SPACE.label2id
    starts = [1, 1 + pieces[0], 1 + pieces[0] + pieces[1], 1 + sum(pieces[:3])]  # after [CLS]
    assert [labels[i] for i in starts] == [ids["B-facility"], ids["I-facility"], ids["O"], ids["O"]]
    assert [word_pos[i] for i in starts] == [0, 1, 2, 3]
    assert sum(x != IGNORE for x in labels) == 4 and sum(x >= 0 for x in word_pos) == 4

    all_ = encode([rec], SPACE, tokenizer, 64, 8, label_all=True)[0]
    assert all_["word_pos"] == row["word_pos"]  # evaluation still reads the first sub-token only
    inner = all_["labels"][0][1:-1]
    assert inner == [ids["B-facility"]] + [ids["I-facility"]] * (sum(pieces[:2]) - 1) + [ids["O"]] * sum(pieces[2:])


@pytest.mark.parametrize("seed", range(5))
def test_windows_cover_every_word_once(seed):
    rng = random.Random(seed)
    counts = [rng.randint(1, 6) for _ in range(rng.randint(1, 80))]
    budget, stride = 12, rng.randint(0, 6)
    ws = windows(counts, budget, stride)
    assert ws[0][2] == 0 and ws[-1][3] == len(counts)
    for (s, e, os_, oe), nxt in zip(ws, ws[1:] + [None]):
        assert s <= os_ < oe <= e and sum(counts[s:e]) <= budget
        if nxt:
            assert oe == nxt[2] and nxt[0] > s and nxt[1] > e and sum(counts[nxt[0] : e]) <= stride


def test_long_sentences_are_windowed_and_merged_back(tokenizer):
    rng = random.Random(1)
    records = []
    for n in (3, 40, 75):
        tags = [t.replace("geo-loc", "facility").replace("product", "person") for t in random_iob2(rng, n)]
        records.append(
            {"tokens": [rng.choice(["the", "Zürich", LONG_WORD, "a", "!", "Statue"]) for _ in range(n)], "tags": tags}
        )
    rows = encode(records, SPACE, tokenizer, 24, 6)
    assert [len(r["input_ids"]) > 1 for r in rows] == [False, True, True]
    assert all(len(ids) <= 24 for r in rows for ids in r["input_ids"])
    batch = collate(rows, tokenizer.pad_token_id)
    # a model that predicts the gold tag at every labelled position: merged back, each word appears once
    logits = torch.nn.functional.one_hot(batch["labels"].clamp(min=0), len(SPACE.names)).float() * 10
    pred, _, gold, sentence = WordOutputs(logits, batch["word_pos"], batch["labels"], batch["word_sentence"]).words()
    assert list(sentence) == [0] * 3 + [1] * 40 + [2] * 75
    assert [SPACE.names[i] for i in gold] == [t for r in records for t in r["tags"]]
    metrics = EntityMetrics(SPACE.names)
    metrics.add(gold, pred, sentence)
    m = metrics.compute()
    assert m["f1"] == 1.0 and m["accuracy"] == 1.0 and m["n"] == 3
    assert m["entities"] == sum(len(spans(r["tags"])) for r in records)
