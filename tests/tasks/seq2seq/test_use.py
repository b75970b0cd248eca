"""Using a finished text-to-text run (summarization, translation): predict (texts, files with a progress bar), eval,
export then plain transformers, generate, doctor on planted data, what does not apply (folds, ensembles, chat), and
bad input as one paragraph with exit 2. One tiny decoder-only run (tests/conftest.py: translation_run) serves all."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

import tunelab
from tests.conftest import make_pairs, save_tiny_llama, tiny_translation_recipe, write_jsonl
from tests.test_errors import run_cli

TEXTS = ["six zéro quatre huit", "deux", "neuf neuf un trois"]


@pytest.fixture(scope="module")
def predictor(translation_run):
    return tunelab.load(translation_run)


@pytest.fixture(scope="module")
def expected(predictor) -> list[str]:
    outputs = predictor.generate(TEXTS)
    assert all(outputs)  # the talkative model says something for each
    return outputs


def test_predict_puts_texts_and_files_through_the_template(translation_run, expected, tmp_path, monkeypatch, capsys):
    code, _ = run_cli(monkeypatch, capsys, "predict", translation_run, *TEXTS)
    assert code in (0, None)
    code, _ = run_cli(monkeypatch, capsys, "predict", translation_run, *TEXTS, "--output", tmp_path / "a.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rows == [{"text": t, "generated": g} for t, g in zip(TEXTS, expected)]

    # a file: its source column by default (the run's data.source_column), a progress bar, the same outputs
    pairs = write_jsonl(tmp_path / "in.jsonl", [{"source": t, "target": "x", "note": "-"} for t in TEXTS])
    code, text = run_cli(monkeypatch, capsys, "predict", translation_run, "--input", pairs, "--output",
                         tmp_path / "b.jsonl", "--batch-size", "2")  # fmt: skip
    assert code in (0, None), text
    rows = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["generated"] for r in rows] == expected
    assert "predicting" in text and "3/3" in text and "3 predictions" in text


def test_predict_reads_the_source_column_the_run_was_trained_with(predictor, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(predictor.config.data, "source_column", "fr")  # as a run trained with --source-column fr
    monkeypatch.setattr(tunelab.api, "load", lambda run: predictor)
    rows = write_jsonl(tmp_path / "in.jsonl", [{"fr": t, "source": "not this one"} for t in TEXTS])
    code, _ = run_cli(monkeypatch, capsys, "predict", "RUN", "--input", rows, "--output", tmp_path / "out.jsonl")
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert code in (0, None) and [(r["text"], r["generated"]) for r in out] == list(zip(TEXTS, expected))


def test_eval_prints_the_generation_metrics_of_a_file(translation_run, tmp_path, monkeypatch, capsys):
    data = write_jsonl(tmp_path / "test.jsonl", make_pairs(6, seed=5))
    code, text = run_cli(monkeypatch, capsys, "eval", translation_run, "--data", data)
    assert code in (0, None)
    assert all(name in text for name in ("chrf", "bleu", "rougeL", "token_f1", "generated"))
    assert "nrefs" not in text  # the sacrebleu signatures stay in --json
    code, text = run_cli(monkeypatch, capsys, "eval", translation_run, "--data", data, "--json")
    metrics = json.loads(text)
    assert metrics["generated"] == 6 and "nrefs" in metrics["chrf_signature"]


def test_export_loads_with_plain_transformers_and_generates_what_the_run_does(
    translation_run, predictor, expected, tmp_path, monkeypatch, capsys
):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "exported"
    code, text = run_cli(monkeypatch, capsys, "export", translation_run, "--out", out)
    assert code in (0, None) and "AutoModelForCausalLM.from_pretrained" in text and "prompt_template.json" in text

    card = (translation_run / "README.md").read_text(encoding="utf-8")
    assert "AutoModelForCausalLM" in card and "prompt_template.json" in card and "pipeline(" not in card

    # the card's recipe, word for word: the template, the chat template (a chat tokenizer), greedy generate
    tok, model = AutoTokenizer.from_pretrained(out), AutoModelForCausalLM.from_pretrained(out)
    template = json.loads((out / "prompt_template.json").read_text(encoding="utf-8"))["template"]
    assert "French" in template and "English" in template
    for text, want in zip(TEXTS, expected):
        prompt = template.format(source=text)
        inputs = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                         return_tensors="pt", return_dict=True)  # fmt: skip
        generated = model.generate(**inputs, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
        assert tok.decode(generated[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip() == want


def test_generate_answers_and_chat_is_refused(translation_run, expected, monkeypatch, capsys):
    code, text = run_cli(monkeypatch, capsys, "generate", translation_run, TEXTS[0], "--max-new-tokens", "8")
    assert code in (0, None) and text == " ".join(expected[0].split())
    code, text = run_cli(monkeypatch, capsys, "generate", translation_run, TEXTS[0], "--temperature", "1")
    assert code == 2 and "greedy" in text and "Traceback" not in text
    monkeypatch.setattr("builtins.input", lambda prompt="": "")
    code, text = run_cli(monkeypatch, capsys, "chat", translation_run)
    assert code == 2 and "does not chat" in text and "tunelab generate" in text


def test_folds_and_ensembles_do_not_apply(translation_run, tmp_path, monkeypatch, capsys):
    data = write_jsonl(tmp_path / "pairs.jsonl", make_pairs(20))
    code, text = run_cli(monkeypatch, capsys, "train", "--task", "translation", "--train", data, "--folds", "3",
                         "--output-dir", tmp_path / "cv")  # fmt: skip
    assert code == 2 and "cross-validation is built for classification" in text and "'translation'" in text
    assert "Traceback" not in text and not (tmp_path / "cv").exists()
    other = tmp_path / "other"
    shutil.copytree(translation_run, other, ignore=shutil.ignore_patterns("checkpoints"))
    code, text = run_cli(monkeypatch, capsys, "ensemble", translation_run, other, "--out", tmp_path / "ens")
    assert code == 2 and "task 'translation' has no ensembles (tasks with them: classification" in text
    assert "Traceback" not in text and not (tmp_path / "ens").exists()


@pytest.fixture(scope="module")
def tiny_llama_t2t(tmp_path_factory, smollm2_tokenizer_dir):
    return save_tiny_llama(tmp_path_factory.mktemp("t2t-bad-llama"), smollm2_tokenizer_dir)


@pytest.mark.parametrize(
    "rows, prompt, message",
    [
        ([{"src": "un", "target": "one"}], None, "no column 'source' (data.source_column). The file has: 'src', "
         "'target'. Name the right one in the recipe (data.source_column) or with --source-column."),
        ([{"source": "un", "tgt": "one"}], None, "no column 'target' (data.target_column)"),
        ([{"source": "un", "target": "one"}, {"source": "deux", "target": " "}], None,
         "pairs.jsonl, line 2: empty 'target'. Every pair needs a source and a target"),
        ([{"source": "un", "target": "one"}], "Summarize for {audience}: {source}",
         "the prompt template names the column 'audience', which the file lacks. The file has: 'source', 'target'."),
        ([{"source": "un", "target": "one"}], "Translate {source", "the prompt template 'Translate {source' is "
         "malformed"),
    ],
)  # fmt: skip
def test_bad_input_is_one_paragraph_and_exit_2(rows, prompt, message, tiny_llama_t2t, tmp_path, monkeypatch, capsys):
    data = write_jsonl(tmp_path / "pairs.jsonl", rows * 4)
    recipe = tiny_translation_recipe(tiny_llama_t2t, data, tmp_path / "run")
    if prompt:
        recipe["data"]["prompt"] = prompt
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    code, text = run_cli(monkeypatch, capsys, "train", tmp_path / "r.yaml", "--quiet")
    assert code == 2 and message in text and "Traceback" not in text and not (tmp_path / "run").exists()


def test_doctor_finds_an_empty_target_an_overlong_source_and_a_shared_source(tiny_llama_t2t, tmp_path, monkeypatch,
                                                                             capsys):  # fmt: skip
    train = make_pairs(30)
    train[3] = {"fr": "un deux", "en": ""}  # line 4: an empty target
    train[5] = {"fr": " ".join(["neuf"] * 30), "en": " ".join(["nine"] * 30)}  # line 6: longer than the limits
    train[7] = {"fr": "sept sept sept", "en": "seven seven seven"}  # line 8: its source is in the test file too
    test = make_pairs(8, seed=1) + [{"fr": "sept sept sept", "en": "seven seven"}]  # line 9
    rename = lambda rows: [{"fr": r.get("fr", r.get("source")), "en": r.get("en", r.get("target"))} for r in rows]  # noqa: E731
    train_file = write_jsonl(tmp_path / "train.jsonl", rename(train))
    test_file = write_jsonl(tmp_path / "test.jsonl", rename(test))
    code, text = run_cli(monkeypatch, capsys, "doctor", "--task", "translation", "--model", tiny_llama_t2t, "--train",
                         train_file, "--test", test_file, "--source-column", "fr", "--target-column", "en", "--set",
                         "data.max_source_tokens=16", "--set", "data.max_target_tokens=16", "--out", tmp_path / "dr",
                         "--json", "--strict")  # fmt: skip
    assert code == 1  # --strict: a source shared between splits fails it
    report = json.loads((tmp_path / "dr" / "doctor.json").read_text(encoding="utf-8"))
    found = {}
    for f in report["findings"]:
        found.setdefault(f["check"], []).append(f)
    empty = found["empty_text"][0]
    assert empty["severity"] == "problem" and empty["rows"] == [
        {"file": str(train_file), "line": 4, "message": empty["rows"][0]["message"]}
    ] and "empty 'en'" in empty["message"]  # fmt: skip
    cut = found["truncation"][0]
    assert {(r["line"], r["part"]) for r in cut["rows"]} == {(6, "source"), (6, "target")}
    assert "data.max_source_tokens" in cut["message"] and cut["data"]["targets_cut"] == 1
    lengths = found["lengths"][0]
    assert lengths["data"]["sources"]["max_source_tokens"] == 16 and lengths["data"]["sources"]["cut"]["train"] == 1
    shared = found["shared_sources"][0]
    assert shared["severity"] == "problem"
    assert [(r["file"], r["line"], r["split"], r["also_in"], r["other_line"]) for r in shared["rows"]] == [
        (str(test_file), 9, "test", "train", 8)
    ]
    assert "conflicting_labels" not in found and "labels" not in found  # pairs have no labels
    assert not (tmp_path / "dr" / "lengths.png").exists()  # data.max_length cuts nothing here: no such plot
