"""Preference pairs: reading and checking (file:line errors), the split by prompt, and the two rows of a pair under
SmolLM2's real chat template — labels on each answer only, the same prompt tokens, the prompt cut from the left."""

from __future__ import annotations

import csv
import json

import pytest

from tunelab.config import load_config
from tunelab.data import IGNORE
from tunelab.errors import TunelabError
from tunelab.tasks.lm.chat import render
from tunelab.tasks.preference.data import preference_key, preference_splits, read_preferences
from tunelab.tasks.preference.encode import MIN_PROMPT_TOKENS, encode_pair, encode_pairs

SYSTEM = {"role": "system", "content": "You answer in one short sentence."}
CHAT = [
    SYSTEM,
    {"role": "user", "content": "Who wrote Hamlet?"},
    {"role": "assistant", "content": "Shakespeare."},
    {"role": "user", "content": "What is the capital of France?"},
]


@pytest.fixture(scope="module")
def tokenizer(smollm2_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def trained(tokenizer, ids, labels) -> str:
    assert all(label in (IGNORE, tok) for tok, label in zip(ids, labels))
    return tokenizer.decode([label for label in labels if label != IGNORE])


def prompt_length(labels) -> int:
    return next(i for i, label in enumerate(labels) if label != IGNORE)


# ------------------------------------------------------------------ the two rows of a pair


def test_each_row_trains_exactly_its_answer_and_end_of_turn_after_the_same_prompt_tokens(tokenizer):
    pair = encode_pair(tokenizer, CHAT, "Paris.", "It is Lyon, I believe.", 256)
    assert trained(tokenizer, pair["chosen_ids"], pair["chosen_labels"]) == "Paris.<|im_end|>\n"
    assert trained(tokenizer, pair["rejected_ids"], pair["rejected_labels"]) == "It is Lyon, I believe.<|im_end|>\n"
    # the earlier assistant turn of the prompt ("Shakespeare.") is context: not trained on either side
    n = prompt_length(pair["chosen_labels"])
    assert n == prompt_length(pair["rejected_labels"])
    assert pair["chosen_ids"][:n] == pair["rejected_ids"][:n]
    generation_prompt = tokenizer.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    assert pair["chosen_ids"][:n] == tokenizer(generation_prompt, add_special_tokens=False)["input_ids"]
    assert pair["chosen_ids"][n:].count(tokenizer.eos_token_id) == 1  # the end-of-turn marker, trained
    assert pair["prompt_cut"] == 0


def test_rows_are_what_sft_renders_for_the_same_conversation(tokenizer):
    prompt = [{"role": "user", "content": "What is the capital of France?"}]
    pair = encode_pair(tokenizer, prompt, "Paris.", "Lyon.", 256)
    for answer, side in (("Paris.", "chosen"), ("Lyon.", "rejected")):
        sft = render(tokenizer, [*prompt, {"role": "assistant", "content": answer}])
        assert pair[f"{side}_ids"] == sft["input_ids"]
        assert pair[f"{side}_labels"] == sft["labels"]


def test_one_bos_and_the_template_once(tokenizer):
    pair = encode_pair(tokenizer, CHAT[1:], "Paris.", "Lyon.", 256)  # no system message: the template adds its own
    for side, answer in (("chosen", "Paris."), ("rejected", "Lyon.")):
        ids = pair[f"{side}_ids"]
        assert ids[0] == tokenizer.bos_token_id and ids[1] != tokenizer.bos_token_id
        text = tokenizer.decode(ids)
        assert text == tokenizer.apply_chat_template([*CHAT[1:], {"role": "assistant", "content": answer}],
                                                     tokenize=False)  # fmt: skip
        assert text.count("<|im_start|>system") == 1 and text.count("<|im_start|>assistant") == 2


# ------------------------------------------------------------------ over-long pairs


def long_prompt(words: int) -> list[dict]:
    text = " ".join(f"filler{i}" for i in range(words)) + " In the end: what is the capital of France?"
    return [SYSTEM, {"role": "user", "content": text}]


def test_prompt_is_cut_from_the_left_keeping_the_system_message_and_the_question(tokenizer):
    prompt = long_prompt(150)
    whole = encode_pair(tokenizer, prompt, "Paris.", "Lyon, I think.", 10_000)
    pair = encode_pair(tokenizer, prompt, "Paris.", "Lyon, I think.", 64)
    assert max(len(pair["chosen_ids"]), len(pair["rejected_ids"])) <= 64
    assert pair["prompt_cut"] == prompt_length(whole["chosen_labels"]) - prompt_length(pair["chosen_labels"]) > 100
    text = tokenizer.decode(pair["chosen_ids"])
    assert text.startswith(f"<|im_start|>system\n{SYSTEM['content']}<|im_end|>\n<|im_start|>user\n")
    assert "filler149 In the end: what is the capital of France?<|im_end|>\n<|im_start|>assistant\n" in text
    assert "filler0 " not in text and "filler100 " not in text  # the oldest text went first
    n = prompt_length(pair["chosen_labels"])
    assert pair["chosen_ids"][:n] == pair["rejected_ids"][:n]
    assert trained(tokenizer, pair["chosen_ids"], pair["chosen_labels"]) == "Paris.<|im_end|>\n"
    assert trained(tokenizer, pair["rejected_ids"], pair["rejected_labels"]) == "Lyon, I think.<|im_end|>\n"


def test_the_oldest_turns_go_before_the_last_question_is_cut(tokenizer):
    old = [{"role": "user", "content": "An old question " * 20}, {"role": "assistant", "content": "Old. " * 20}]
    chat = [SYSTEM, *old, CHAT[-1]]
    whole = encode_pair(tokenizer, chat, "Paris.", "Lyon.", 10_000)["chosen_ids"]
    pair = encode_pair(tokenizer, chat, "Paris.", "Lyon.", len(whole) - 10)
    text = tokenizer.decode(pair["chosen_ids"])
    assert "An old question" in text and "Old. Old." in text  # the oldest turn is cut at its start only
    assert len(pair["chosen_ids"]) <= len(whole) - 10 and pair["prompt_cut"] >= 10
    pair = encode_pair(tokenizer, chat, "Paris.", "Lyon.", len(whole) - 60)
    text = tokenizer.decode(pair["chosen_ids"])
    assert "question" not in text and "Old." not in text  # emptied, the turn went whole, and the reply after it
    assert f"{SYSTEM['content']}<|im_end|>\n<|im_start|>user\n{CHAT[-1]['content']}<|im_end|>" in text


def test_a_pair_whose_answers_cannot_fit_is_dropped_and_counted(tokenizer, tmp_path):
    rows = [
        {"prompt": "What is the capital of France?", "chosen": "Paris.", "rejected": "Lyon."},
        {"prompt": long_prompt(150)[1]["content"], "chosen": "Paris.", "rejected": "Lyon."},
        {"prompt": "What is the capital of France?", "chosen": "Paris. " * 80, "rejected": "Lyon."},
        {"prompt": "Why?", "chosen": "Because " * 20, "rejected": "No."},  # a short question is never cut
    ]
    records = read_preferences(write_jsonl(tmp_path / "pairs.jsonl", rows))
    whole = [encode_pair(tokenizer, r["prompt"], r["chosen"], r["rejected"], 10_000)["chosen_ids"] for r in records]
    assert len(whole[0]) <= 48 < min(map(len, whole[1:]))
    assert len(tokenizer("Why?", add_special_tokens=False)["input_ids"]) < MIN_PROMPT_TOKENS
    pairs, counts = encode_pairs(records, tokenizer, 48)
    assert counts == {"prompts_cut": 1, "dropped_overlong": 2}
    assert [p["line"] for p in pairs] == [1, 2]
    assert [p["prompt_cut"] > 0 for p in pairs] == [False, True]
    for p in pairs:
        assert p["length"] == max(len(p["chosen_ids"]), len(p["rejected_ids"])) <= 48
    pairs, counts = encode_pairs(records, tokenizer, 10_000)
    assert counts == {"prompts_cut": 0, "dropped_overlong": 0} and len(pairs) == 4


# ------------------------------------------------------------------ the forms a pair comes in


def test_text_prompt_messages_and_hf_conversations_encode_the_same(tokenizer, tmp_path):
    question, chosen, rejected = "What is the capital of France?", "Paris.", "Lyon."
    user = {"role": "user", "content": question}
    rows = [
        {"prompt": question, "chosen": chosen, "rejected": rejected},
        {"prompt": [user], "chosen": {"role": "assistant", "content": chosen},
         "rejected": [{"role": "assistant", "content": rejected}]},
        {"prompt": question, "chosen": [user, {"role": "assistant", "content": chosen}],
         "rejected": [user, {"role": "assistant", "content": rejected}]},
    ]  # fmt: skip
    records = read_preferences(write_jsonl(tmp_path / "pairs.jsonl", rows))
    with open(tmp_path / "pairs.csv", "w", newline="", encoding="utf-8") as f:  # a list of messages as a JSON cell
        w = csv.writer(f)
        w.writerow(["prompt", "chosen", "rejected"])
        w.writerow([json.dumps([user]), json.dumps(rows[2]["chosen"]), rejected])
        w.writerow([question, chosen, rejected])
    records += read_preferences(tmp_path / "pairs.csv")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows[2:]), tmp_path / "pairs.parquet")
    records += read_preferences(tmp_path / "pairs.parquet")
    (tmp_path / "pairs.tsv").write_text(f"question\tgood\tbad\n{question}\t{chosen}\t{rejected}\n", encoding="utf-8")
    records += read_preferences(tmp_path / "pairs.tsv", "question", "good", "bad")
    assert len(records) == 7
    assert all(r["prompt"] == [user] and (r["chosen"], r["rejected"]) == (chosen, rejected) for r in records)
    assert len({preference_key(r) for r in records}) == 1
    pairs, _ = encode_pairs(records, tokenizer, 256)
    first = {k: v for k, v in pairs[0].items() if k != "line"}
    assert all({k: v for k, v in p.items() if k != "line"} == first for p in pairs)
    assert [p["line"] for p in pairs] == [1, 2, 3, 2, 3, 1, 2]


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "row, message",
    [
        ({"prompt": "hi", "rejected": "x"}, "no 'chosen'"),
        ({"prompt": "hi", "chosen": "x", "rejected": None}, "no 'rejected'"),
        ({"prompt": "hi", "chosen": "Paris.", "rejected": " Paris.\n"}, "are the same answer"),
        ({"prompt": "hi", "chosen": "  ", "rejected": "x"}, "empty 'chosen'"),
        ({"prompt": "", "chosen": "a", "rejected": "b"}, "empty 'prompt'"),
        ({"prompt": [{"role": "robot", "content": "hi"}], "chosen": "a", "rejected": "b"}, "unknown role 'robot'"),
        ({"prompt": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "chosen": "a", "rejected": "b"},
         "non-text content"),
        ({"prompt": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], "chosen": "a",
          "rejected": "b"}, "must end with the user's turn"),
        ({"prompt": [{"role": "user", "content": "hi"}, {"role": "system", "content": "s"},
                     {"role": "user", "content": "hi"}], "chosen": "a", "rejected": "b"}, "system message after"),
        ({"prompt": [{"text": "hi"}], "chosen": "a", "rejected": "b"}, 'not a {"role": ..., "content": ...} object'),
        ({"prompt": 7, "chosen": "a", "rejected": "b"}, "got int"),
        ({"prompt": "hi", "chosen": [{"role": "user", "content": "other"}, {"role": "assistant", "content": "a"}],
          "rejected": "b"}, "differ from the prompt"),
        ({"prompt": "hi", "chosen": [{"role": "user", "content": "hi"}], "rejected": "b"}, "not the assistant's"),
        ({"prompt": "hi", "chosen": "a", "rejected": 3}, "got int"),
    ],
)  # fmt: skip
def test_bad_pairs_name_the_file_and_line(tmp_path, row, message):
    path = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "ok", "chosen": "a", "rejected": "b"}, row])
    with pytest.raises(TunelabError, match="pairs.jsonl, line 2: ") as e:
        read_preferences(path)
    assert message in str(e.value)


def test_a_missing_column_lists_the_columns_and_guesses(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("prompts,chosen,rejected\nhi,a,b\n", encoding="utf-8")
    with pytest.raises(TunelabError, match="pairs.csv: no column 'prompt'") as e:
        read_preferences(path)
    assert "'prompts', 'chosen', 'rejected'" in str(e.value) and "Did you mean 'prompts'?" in str(e.value)
    with pytest.raises(TunelabError, match="no column 'better' .data.chosen_column.") as e:
        read_preferences(path, "prompts", "better")
    assert "Did you mean" not in str(e.value)


def test_problems_collects_every_bad_pair_and_keeps_the_good(tmp_path):
    rows = [{"prompt": "q1", "chosen": "a", "rejected": "b"}, {"prompt": "q2", "chosen": "a", "rejected": "a"},
            {"prompt": "q3", "chosen": "a"}, {"prompt": "q4", "chosen": "c", "rejected": "d"}]  # fmt: skip
    path = write_jsonl(tmp_path / "pairs.jsonl", rows)
    problems = []
    records = read_preferences(path, problems=problems)
    assert [r["line"] for r in records] == [1, 4]
    assert [(p["check"], p["file"], p["line"]) for p in problems] == [("bad_pair", str(path), 2),
                                                                       ("bad_pair", str(path), 3)]  # fmt: skip


def test_a_prompt_the_chat_template_refuses_names_the_line(smollm2_tokenizer_dir, tmp_path):
    from transformers import AutoTokenizer

    strict = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    strict.chat_template = (
        "{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('roles must alternate user/assistant') }}{% endif %}"
        "{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )
    rows = [{"prompt": "hi", "chosen": "a", "rejected": "b"},
            {"prompt": [{"role": "user", "content": "hi"}, {"role": "user", "content": "again"}], "chosen": "a",
             "rejected": "b"}]  # fmt: skip
    records = read_preferences(write_jsonl(tmp_path / "pairs.jsonl", rows))
    with pytest.raises(TunelabError, match="pairs.jsonl, line 2: the model's chat template refuses") as e:
        encode_pairs(records, strict, 64)
    assert "roles must alternate" in str(e.value)


# ------------------------------------------------------------------ the split


def test_one_prompts_pairs_stay_in_one_split_and_duplicates_go(tmp_path):
    rows = []
    for i in range(30):
        prompt = f"question {i}" if i % 2 else [{"role": "user", "content": f"question {i}"}]
        rows += [{"prompt": prompt, "chosen": f"good {i}.{j}", "rejected": f"bad {i}.{j}"} for j in range(3)]
    rows += rows[:4]  # exact duplicates
    records = read_preferences(write_jsonl(tmp_path / "pairs.jsonl", rows))
    cfg = load_config({"task": "sft", "data": {"train": "pairs.jsonl", "validation_fraction": 0.2,
                                               "test_fraction": 0.2}})  # fmt: skip
    splits = preference_splits(cfg, {"train": records, "validation": None, "test": None})
    assert splits.dropped_duplicates == 4
    parts = [splits.train, splits.validation, splits.test]
    assert sum(map(len, parts)) == 90 and all(parts)
    keys = [{preference_key(r) for r in part} for part in parts]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])
    assert all(sum(preference_key(r) == k for r in part) == 3 for part, ks in zip(parts, keys) for k in ks)
    again = preference_splits(cfg, {"train": records, "validation": None, "test": None})
    assert [r["line"] for r in again.test] == [r["line"] for r in splits.test]  # seeded
    given = preference_splits(cfg, {"train": records, "validation": None, "test": records[:5]})
    assert given.test == records[:5] and given.dropped_duplicates == 9  # 4 duplicates + the 5 pairs of test
    assert not {(preference_key(r), r["chosen"]) for r in given.train} & {(preference_key(r), r["chosen"])
                                                                          for r in records[:5]}  # fmt: skip
