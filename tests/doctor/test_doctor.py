"""`tunelab doctor` on small files with planted problems: each found at its line, in one run; a pair just under the
near-duplicate threshold not found; the truncation share exact for MiniLM's tokenizer; --strict exit codes."""

from __future__ import annotations

import json
import sys

import pytest

from tests.conftest import make_sentiment
from tunelab.config import load_config
from tunelab.doctor import doctor
from tunelab.doctor.near import _jaccard, near_duplicates, normalise

NEAR_TRAIN = "the cinematography in this picture is breathtaking and the score soars"
NEAR_TEST = "the cinematography in this picture is breathtaking and the score soared"  # one word's ending
UNDER_TRAIN = "an uneven script weighs down a promising cast of character actors"
UNDER_TEST = "an uneven script weighs down a talented cast of character actors too"


def jaccard(x: str, y: str) -> float:
    """The similarity near_duplicates confirms its candidates with, of two raw texts."""
    return _jaccard(normalise(x), normalise(y))


def write(path, lines: list[str]) -> None:
    path.write_bytes(b"\n".join(x.encode("utf-8") if isinstance(x, str) else x for x in lines) + b"\n")


@pytest.fixture
def planted(tmp_path):
    """train.csv / validation.csv / test.csv with problems at known lines (line 1 is the header)."""
    clean = [f"{r['text']},{r['label']}" for r in make_sentiment(40, seed=1)]
    train = [
        "text,label",
        *clean,  # lines 2-41
        ",pos",  # 42 empty text
        "   ,neg",  # 43 whitespace only
        "a text without a label,",  # 44 empty label
        "cafÃ© au lait and croissants were wonderful here,pos",  # 45 mojibake
        "<div><a href='http://example.com/aaaaaaaaaaaa'>http://example.com/bbbbbbbbbbbbbb</a></div>,neg",  # 46
        "the film was fine,pos",  # 47 conflict with 48
        "the film was fine,neg",  # 48
        clean[0],  # 49 exact duplicate of line 2
        "too,many,fields",  # 50 malformed
        b"caf\xe9 latin-1 bytes,pos",  # 51 undecodable
        f"{NEAR_TRAIN},pos",  # 52 near-duplicate of test line 3
        f"{UNDER_TRAIN},neg",  # 53 just under the threshold with test 4
        "good " * 30 + ",pos",  # 54 32 tokens: truncated at 16
        "bad " * 20 + ",neg",  # 55 22 tokens: truncated
    ]
    validation = [
        "text,label",
        *[f"{r['text']},{r['label']}" for r in make_sentiment(6, seed=2)],
        "shared between validation and test,pos",  # line 8
    ]
    test = [
        "text,label",
        *[f"x{r['text']},{r['label']}" for r in make_sentiment(1, seed=3)],
        f"{NEAR_TEST},pos",
        f"{UNDER_TEST},neg",
        "shared between validation and test,pos",  # lines 3, 4, 5
        clean[5],  # line 6: a copy of train line 7, which dedupe drops from the run's training
    ]
    for name, lines in (("train", train), ("validation", validation), ("test", test)):
        write(tmp_path / f"{name}.csv", lines)
    return tmp_path


def recipe(tiny_bert, root, **data):
    return load_config({"task": "classification", "model": {"name": str(tiny_bert)},
                        "data": {"train": str(root / "train.csv"), "validation": str(root / "validation.csv"),
                                 "test": str(root / "test.csv"), "max_length": 16, **data}})  # fmt: skip


def lines_of(report, check):
    rows = [r for f in report.findings if f.check == check for r in f.rows]
    return sorted((r["file"].rsplit("/", 1)[-1], r["line"]) for r in rows)


def test_every_planted_problem_is_found_at_its_line_in_one_run(planted, tiny_bert, tmp_path):
    assert jaccard(NEAR_TRAIN, NEAR_TEST) >= 0.8 > jaccard(UNDER_TRAIN, UNDER_TEST) >= 0.6
    report = doctor(recipe(tiny_bert, planted), tmp_path / "out", show_progress=False)
    assert lines_of(report, "empty_text") == [("train.csv", 42), ("train.csv", 43)]
    assert lines_of(report, "empty_label") == [("train.csv", 44)]
    assert lines_of(report, "malformed_row") == [("train.csv", 50)]
    assert lines_of(report, "undecodable") == [("train.csv", 51)]
    assert ("train.csv", 45) in lines_of(report, "mojibake")
    assert lines_of(report, "markup") == [("train.csv", 46)]
    assert lines_of(report, "conflicting_labels") == [("train.csv", 47), ("train.csv", 48)]
    assert ("train.csv", 49) in lines_of(report, "duplicates")
    # validation and test share line 5 (the run keeps both); train line 7 is test line 6 (dedupe drops it from training)
    assert lines_of(report, "leakage") == [("test.csv", 5), ("train.csv", 7)]
    assert [f.severity for f in report.findings if f.check == "leakage"] == ["problem", "warning"]
    near = [f for f in report.findings if f.check == "near_duplicates"][0].rows
    assert [(r["line"], r["similar_to"]["line"]) for r in near] == [(3, 52)]  # and not the pair just under
    assert {f.check for f in report.strict_failures} == {"leakage", "near_duplicates", "conflicting_labels"}

    # the truncation share: in MiniLM's tokens the markup row is 52, "good " * 30 is 32 and "bad " * 20 22, the rest
    # at most 16 (the sentiment rows 9-11, the near-duplicate 15)
    lengths = [f for f in report.findings if f.check == "lengths"][0].data
    n_train = report.sizes["splits"]["train"]
    assert (lengths["truncated"], lengths["truncated_share"]) == (3, 3 / n_train) and lengths["max"] == 52

    saved = json.loads((tmp_path / "out" / "doctor.json").read_text())
    assert saved["counts"]["problem"] >= 6 and (tmp_path / "out" / "lengths.png").stat().st_size > 1000
    assert "conflicting_labels" in (tmp_path / "out" / "doctor.md").read_text()
    assert any("class_weights" in r["set"] or "max_length" in r["set"] for r in saved["recommendations"])


def test_near_duplicates_need_two_splits_and_see_through_case_and_punctuation():
    pairs = near_duplicates({"train": ["Hello, World! How are you today?", "something else entirely"],
                             "test": ["hello world how are you today", "nothing like the others at all"]})  # fmt: skip
    assert pairs == [{"a": ("train", 0), "b": ("test", 0), "similarity": 1.0}]
    assert near_duplicates({"train": ["same text twice here", "same text twice here!"]}) == []


def test_strict_exit_codes(planted, tiny_bert, tmp_path, monkeypatch, capsys):
    from tunelab.cli import main

    def run(*args):
        monkeypatch.setattr(sys, "argv", ["tunelab", "doctor", *map(str, args)])
        with pytest.raises(SystemExit) as done:
            main()
        return done.value.code

    files = ["--train", planted / "train.csv", "--validation", planted / "validation.csv", "--test",
             planted / "test.csv", "--model", tiny_bert, "--out", tmp_path / "o"]  # fmt: skip
    assert run(*files, "--strict") == 1
    assert run(*files) in (0, None)
    assert "conflicting_labels" in capsys.readouterr().out
    clean = tmp_path / "clean.csv"
    write(clean, ["text,label", *[f"{r['text']},{r['label']}" for r in make_sentiment(60, seed=4)]])
    assert run("--train", clean, "--model", tiny_bert, "--out", tmp_path / "c", "--strict") in (0, None)
    assert run("--train", tmp_path / "missing.csv", "--out", tmp_path / "m") == 2


def test_the_estimate_extrapolates_measured_steps_to_the_whole_run():
    from tunelab.doctor.estimate import extrapolate

    cfg = load_config({"task": "classification", "train": {"epochs": 2, "batch_size": 10, "eval_every": 7}})
    sizes = {"splits": {"train": 95, "validation": 30, "test": 20}}
    e = extrapolate(cfg, sizes, {"step_seconds": 0.6, "setup_seconds": 5.0, "steps": 12, "peak_rss": 2**30})
    # 10 steps per epoch (the last one short) -> 20 steps; validations at 7, 14 and the last step; forward = 1/3
    assert (e["steps"], e["validations"], e["peak_rss_mb"]) == (20, 3, 1024)
    assert e["held_out_seconds"] == pytest.approx((3 * 30 + 20) * 0.6 / 10 / 3, abs=0.05)
    assert e["seconds"] == pytest.approx(5.0 + 20 * 0.6 + e["held_out_seconds"], abs=0.1)


def test_estimate_measures_a_real_child_run(tiny_bert, tmp_path):
    data = tmp_path / "d.csv"
    write(data, ["text,label", *[f"{r['text']},{r['label']}" for r in make_sentiment(80, seed=5)]])
    cfg = load_config({"task": "classification", "model": {"name": str(tiny_bert)}, "data": {"train": str(data)},
                       "train": {"precision": "fp32", "batch_size": 8, "epochs": 1}})  # fmt: skip
    report = doctor(cfg, tmp_path / "out", show_progress=False, estimate=True)
    e = [f for f in report.findings if f.check == "estimate"][0].data
    assert e["steps"] == 8 and e["measured_steps"] >= 3 and e["step_seconds"] > 0 and e["peak_rss_mb"] > 100


def test_the_estimate_counts_augmentation_copies_in_training_only(tiny_bert, tmp_path):
    from tunelab.doctor.estimate import extrapolate

    data = tmp_path / "d.csv"
    write(data, ["text,label", *[f"{r['text']},{r['label']}" for r in make_sentiment(80, seed=6)]])
    recipe = {"task": "classification", "model": {"name": str(tiny_bert)}, "data": {"train": str(data)},
              "train": {"batch_size": 8, "epochs": 1}}  # fmt: skip
    plain = doctor(load_config(recipe), tmp_path / "plain", show_progress=False).sizes
    recipe["data"]["augment"] = {"method": "paraphrase", "copies": 4}
    augmented = doctor(load_config(recipe), tmp_path / "aug", show_progress=False).sizes
    assert augmented["train_rows"] == 5 * plain["train_rows"] and augmented["splits"] == plain["splits"]
    assert augmented["paraphrases"] == 4 * plain["splits"]["train"]
    measured = {"step_seconds": 0.3, "setup_seconds": 1.0, "steps": 10, "peak_rss": 2**20}
    e, e0 = extrapolate(load_config(recipe), augmented, measured), extrapolate(load_config(recipe), plain, measured)
    assert (e0["steps"], e["steps"]) == (-(-plain["train_rows"] // 8), -(-5 * plain["train_rows"] // 8))
    assert e["held_out_seconds"] == e0["held_out_seconds"]  # validation and test are never augmented
    assert f"writing {augmented['paraphrases']} paraphrases" in e["left_out"]


def test_ner_sentences_bad_lines_conflicting_tags_and_leakage(tiny_bert, tmp_path):
    def conll(path, sentences):
        path.write_text("\n\n".join("\n".join("\t".join(w) for w in s) for s in sentences) + "\n")

    ok = [[("Alice", "B-person"), ("visits", "O"), (f"Paris{i}", "B-geo-loc")] for i in range(30)]  # lines 1-119
    train = [*ok,
             [("Bob", "B-person"), ("smiles", "O")],  # line 121
             [("Bob", "O"), ("smiles", "O")],  # line 124: the same words, other tags
             [("broken",), ("tags", "X-thing")],  # line 127: no tag column; line 128: a tag outside IOB2
             [("the", "O"), ("same", "O"), ("sentence", "O"), ("in", "O"), ("test", "O")]]  # fmt: skip
    conll(tmp_path / "train.conll", train)
    conll(tmp_path / "test.conll", [train[-1], [("Carol", "B-person"), ("waves", "O")]])
    files = {"train": str(tmp_path / "train.conll"), "test": str(tmp_path / "test.conll")}
    cfg = load_config({"task": "ner", "model": {"name": str(tiny_bert)}, "data": files})
    report = doctor(cfg, tmp_path / "out", show_progress=False)
    assert lines_of(report, "malformed_row") == [("train.conll", 127)]
    assert lines_of(report, "bad_tags") == [("train.conll", 128)]
    assert lines_of(report, "conflicting_labels") == [("train.conll", 121), ("train.conll", 124)]
    assert ("train.conll", 130) in lines_of(report, "leakage")  # dedupe drops it from training: a warning
    assert set([f for f in report.findings if f.check == "labels"][0].data["train"]) == {"person", "geo-loc"}
    assert "splits into windows" in [f for f in report.findings if f.check == "lengths"][0].message


def test_sft_chats_bad_rows_several_answers_and_leakage(tiny_llama, tmp_path):
    def chat(q, a):
        return json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]})

    rows = [chat(f"question number {i} about the weather today", f"answer {i}") for i in range(20)]
    rows += [
        chat("what is the capital of france", "Paris."),  # line 21
        chat("what is the capital of france", "It is Paris."),  # line 22: one prompt, two answers
        json.dumps({"messages": [{"role": "user", "content": "no reply here"}]}),
    ]  # line 23: no assistant turn
    (tmp_path / "train.jsonl").write_text("\n".join(rows) + "\n")
    (tmp_path / "test.jsonl").write_text(rows[3] + "\n" + chat("a question only the test has", "yes") + "\n")
    files = {"train": str(tmp_path / "train.jsonl"), "test": str(tmp_path / "test.jsonl")}
    cfg = load_config({"task": "sft", "model": {"name": str(tiny_llama)}, "data": files})
    report = doctor(cfg, tmp_path / "out", show_progress=False)
    assert lines_of(report, "bad_chat") == [("train.jsonl", 23)]
    conflict = [f for f in report.findings if f.check == "conflicting_labels"][0]
    assert conflict.severity == "info" and lines_of(report, "conflicting_labels") == [
        ("train.jsonl", 21),
        ("train.jsonl", 22),
    ]
    assert ("test.jsonl", 1) in lines_of(report, "leakage")  # the run keeps the given test file whole
    strict = {f.check for f in report.strict_failures}  # (the numbered prompts are near-duplicates of each other too)
    assert "leakage" in strict and "conflicting_labels" not in strict


def test_lm_documents_duplicates_and_a_test_file_that_repeats_training(tiny_llama, text_dir, tmp_path):
    docs = sorted(text_dir.iterdir())
    (text_dir / "copy.txt").write_text(docs[0].read_text())  # an exact duplicate inside train
    held = tmp_path / "held.jsonl"
    held.write_text(json.dumps({"text": docs[1].read_text()}) + "\n")
    cfg = load_config({"task": "lm", "model": {"name": str(tiny_llama)},
                       "data": {"train": str(text_dir), "test": str(held), "max_length": 32}})  # fmt: skip
    report = doctor(cfg, tmp_path / "out", show_progress=False)
    assert any(r["file"].endswith("copy.txt") or r["file"].endswith("doc00.txt") for f in report.findings
               if f.check == "duplicates" for r in f.rows)  # fmt: skip
    assert ("held.jsonl", 1) in lines_of(report, "leakage")
    lengths = [f for f in report.findings if f.check == "lengths"][0]
    assert "cuts into pieces" in lengths.message
    assert not any("max_length" in r["set"] for r in report.recommendations)  # pieces lose nothing


def test_the_estimate_counts_pieces_and_stops_at_the_token_budget():
    from tunelab.doctor.estimate import extrapolate

    cfg = load_config({"task": "mlm", "train": {"epochs": 1, "batch_size": 10, "max_tokens": 6000}})
    sizes = {"splits": {"train": 20, "validation": 0, "test": 0}, "train_rows": 100, "row_tokens": 100.0}
    e = extrapolate(cfg, sizes, {"step_seconds": 1.0, "setup_seconds": 0.0, "steps": 12, "peak_rss": 2**20})
    assert e["steps"] == 6  # 100 pieces = 10 steps an epoch, but 6000 tokens / (100 x 10) = 6 steps


def test_class_weights_are_advised_where_the_recipe_field_applies():
    """Imbalanced labels: train.class_weights is recommended for a task whose recipe has the field (classification),
    and the imbalance finding says so; a multilabel recipe has no such field, so neither mentions it."""
    import numpy as np

    from tunelab.doctor import checks
    from tunelab.doctor.advice import recommend
    from tunelab.registry import TASKS

    rows = [{"text": f"t{i}", "label": "a" if i < 60 else "b", "counted": ["a" if i < 60 else "b"]} for i in range(66)]
    splits = {"train": rows, "validation": [], "test": []}
    for task, advised in (("classification", True), ("multilabel", False)):
        cfg = load_config({"task": task})
        applies = "class_weights" in cfg.dump(relevant_only=True)["train"]
        assert applies == advised
        findings = checks.labels(splits, TASKS[task].target, applies)
        imbalance = [f for f in findings if f.check == "imbalance"][0]
        assert ("class_weights" in imbalance.message) == advised, task
        out = recommend(cfg, splits, findings, np.zeros(0))
        assert any(r["set"] == "train.class_weights: balanced" for r in out) == advised, task
