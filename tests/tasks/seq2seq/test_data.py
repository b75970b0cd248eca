"""Text-to-text data and recipe fields: templates, languages, dedupe and split, the family's defaults, bad input."""

from __future__ import annotations

import json

import pytest

from tunelab.config import load_config
from tunelab.errors import TunelabError
from tunelab.tasks.seq2seq.data import pair_splits, read_pairs, template


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def cfg(task="translation", **data):
    return load_config({"task": task, "data": data})


def test_translation_template_names_the_languages_codes_or_names():
    assert template(cfg(train="x.jsonl", source_lang="fr", target_lang="en")) == (
        "Translate the following French text into English.\n\n{source}"
    )
    assert "Klingon text into German" in template(cfg(train="x.jsonl", source_lang="Klingon", target_lang="DE"))
    assert template(cfg(train="x.jsonl")) == "Translate the following text.\n\n{source}"  # neutral without them
    assert "French text into English" in template(cfg())  # the built-in Bible knows its languages
    assert template(cfg(train="x.jsonl", prompt="fr>en: {source}")) == "fr>en: {source}"
    assert template(cfg("summarization", train="x.jsonl")) == "Summarize the following text.\n\n{source}"
    assert "{aspect}" in template(cfg("summarization"))  # ACLSum's own: the aspect goes into the prompt


def test_dedupe_is_on_prompt_and_target_and_a_source_stays_in_one_split(tmp_path):
    rows = []
    for i in range(40):  # each document has three different targets (like an ACLSum paper's aspects)
        rows += [{"source": f"document {i}", "target": f"{aspect} of {i}", "aspect": aspect}
                 for aspect in ("challenge", "approach", "outcome")]  # fmt: skip
    rows += rows[:5]  # exact duplicates
    path = write_jsonl(tmp_path / "docs.jsonl", rows)
    c = cfg("summarization", train=str(path), prompt="The {aspect}:\n{source}", validation_fraction=0.2,
            test_fraction=0.2)  # fmt: skip
    splits = pair_splits(c)
    assert splits.dropped_duplicates == 5
    assert len(splits.train) + len(splits.validation) + len(splits.test) == 120
    by_split = [{r["source"] for r in part} for part in (splits.train, splits.validation, splits.test)]
    assert not (by_split[0] & by_split[1]) and not (by_split[0] & by_split[2]) and not (by_split[1] & by_split[2])
    assert all(len([r for r in splits.test if r["source"] == s]) == 3 for s in by_split[2])  # all three aspects
    assert splits.test[0]["prompt"].startswith("The ")


def test_given_test_file_replaces_the_split_and_its_pairs_leave_train(tmp_path):
    rows = [{"source": f"s{i}", "target": f"t{i}"} for i in range(50)]
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    test = write_jsonl(tmp_path / "test.jsonl", rows[:7])
    splits = pair_splits(cfg(train=str(train), test=str(test)))
    assert [r["source"] for r in splits.test] == [f"s{i}" for i in range(7)]
    assert splits.dropped_duplicates == 7 and not {r["source"] for r in splits.train} & {f"s{i}" for i in range(7)}


def test_the_builtin_bible_keeps_its_split_by_book():
    splits = pair_splits(cfg(limit=100))
    assert len(splits.train) == 100 and 100 < len(splits.test) < 400
    assert not {r["fields"]["book"] for r in splits.train} & {r["fields"]["book"] for r in splits.test}


@pytest.mark.parametrize(
    "rows, data, message",
    [
        ([{"text": "a", "target": "b"}], {}, "no column 'source'.*--source-column"),
        ([{"source": "a", "summary": "b"}], {}, "no column 'target'.*--target-column"),
        ([{"source": "a", "target": "b"}, {"source": "c", "target": " "}], {}, r"line 2: empty 'target'"),
        ([{"source": "", "target": "b"}], {}, r"line 1: empty 'source'"),
        ([{"source": "a", "target": "b"}], {"prompt": "{aspect}: {source}"}, "names the column 'aspect'"),
        ([{"source": "a", "target": "b"}], {"prompt": "{source"}, "data.prompt: .* malformed"),  # the recipe's fault
    ],
)
def test_bad_pairs_are_clear_errors(tmp_path, rows, data, message):
    path = write_jsonl(tmp_path / "pairs.jsonl", rows)
    with pytest.raises(TunelabError, match=message) as e:
        read_pairs(path, cfg(train=str(path), **data))
    assert "pairs.jsonl" in str(e.value) or "data.prompt" in str(e.value)


def test_other_source_and_target_columns_and_template_columns(tmp_path):
    path = write_jsonl(tmp_path / "qa.jsonl", [{"doc": "Paris is in France.", "answer": "France", "q": "Where?"}])
    c = cfg(train=str(path), source_column="doc", target_column="answer", prompt="{q} {source}")
    [r] = read_pairs(path, c)
    assert (r["source"], r["target"], r["fields"]) == ("Paris is in France.", "France", {"q": "Where?"})


def test_family_defaults_apply_only_where_the_recipe_sets_nothing():
    c = load_config({"task": "translation"})
    assert (c.method.name, c.train.batch_size, c.optim.lr, c.eval.batch_size) == ("lora", 8, 1e-3, 16)
    assert (c.data.max_source_tokens, c.data.max_target_tokens) == (384, 128)
    full = load_config({"task": "summarization", "method": {"name": "full"}})
    assert (full.method.name, full.optim.lr, full.train.batch_size) == ("full", 1e-4, 8)  # the LoRA rate is LoRA's
    mine = load_config({"task": "translation", "optim": {"lr": 3e-4}, "train": {"batch_size": 4}})
    assert (mine.optim.lr, mine.train.batch_size) == (3e-4, 4)
    assert load_config({"task": "classification"}).method.name == "full"  # other families unchanged
    assert load_config({"task": "sft"}).train.batch_size == 32


def test_train_with_a_task_and_no_recipe_starts_from_that_tasks_defaults():
    from tunelab.api import _recipe_or_demo
    from tunelab.config import DEMO_RECIPE

    assert _recipe_or_demo(None, {}) == DEMO_RECIPE == _recipe_or_demo(None, {"task": "classification"})
    assert _recipe_or_demo(None, {"task": "translation"}) is None  # not the classifier's metric, method and lr
    c = load_config(_recipe_or_demo(None, {"task": "translation"}), {"task": "translation"})
    assert c.eval.metric == "auto" and c.method.name == "lora"


def test_a_prompt_template_can_be_set_on_the_command_line():
    from tunelab.config import parse_set

    assert parse_set(["data.prompt={source}", "data.prompt2=Summarize the {aspect}: {source}"]) == {
        "data.prompt": "{source}", "data.prompt2": "Summarize the {aspect}: {source}"}  # fmt: skip
    assert parse_set(["method.target_modules=[q_proj, v_proj]", "optim.lr=0.001", "x={a: 1}"]) == {
        "method.target_modules": ["q_proj", "v_proj"], "optim.lr": 0.001, "x": {"a": 1}}  # fmt: skip
