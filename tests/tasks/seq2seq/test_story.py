"""Text-to-text on a tiny random llama (SmolLM2's tokenizer and chat template): what trains, batched generation,
the run directory, and a resumed run that keeps its base row."""

from __future__ import annotations

import json
import random
import shutil
import signal

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import tunelab
from tests.conftest import tiny_lm_recipe
from tunelab.data import IGNORE
from tunelab.errors import TunelabError
from tunelab.tasks.seq2seq.encode import PromptFormat, encode
from tunelab.tasks.seq2seq.generation import Options, generate

FR = "zéro un deux trois quatre cinq six sept huit neuf".split()
EN = "zero one two three four five six seven eight nine".split()


@pytest.fixture
def pairs(tmp_path):
    rng = random.Random(0)
    path = tmp_path / "pairs.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(120):
            digits = [rng.randrange(10) for _ in range(rng.randint(1, 4))]
            row = {"source": " ".join(FR[d] for d in digits), "target": " ".join(EN[d] for d in digits)}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


@pytest.fixture(scope="module")
def tokenizer(smollm2_tokenizer_dir):
    return AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)


def trained(tokenizer, example) -> str:
    return tokenizer.decode([t for t, label in zip(example["input_ids"], example["labels"]) if label != IGNORE])


def test_only_the_target_and_its_end_carry_loss(tokenizer):
    chat = PromptFormat("Translate into English: {source}", encoder_decoder=False, chat=True, max_source_tokens=64)
    ex = chat.example(tokenizer, "Translate into English: deux trois", "two three")
    assert trained(tokenizer, ex) == "two three<|im_end|>\n"  # the reply and its end of turn, nothing of the prompt
    prompt = chat.prompt_ids(tokenizer, "Translate into English: deux trois")
    assert ex["input_ids"][: len(prompt)] == prompt  # generation starts from exactly the trained prefix
    assert all(label == IGNORE for label in ex["labels"][: len(prompt)])

    plain = PromptFormat("{source} =", encoder_decoder=False, chat=False, max_source_tokens=64)
    ex = plain.example(tokenizer, "deux trois =", "two three")
    assert trained(tokenizer, ex) == "two three" + tokenizer.eos_token  # no chat template: target + EOS
    assert ex["input_ids"][-1] == tokenizer.eos_token_id and ex["labels"][-1] == tokenizer.eos_token_id


def test_sources_and_targets_are_cut_to_their_limits_and_counted(tokenizer):
    fmt = PromptFormat("Summarize: {source}", encoder_decoder=False, chat=True, max_source_tokens=8)
    records = [{"source": "word " * 50, "target": "short", "fields": {}},
               {"source": "brief", "target": "long " * 40, "fields": {}}]  # fmt: skip
    examples, items, counts = encode(records, tokenizer, fmt, max_target_tokens=10)
    assert counts == {"sources_cut": 1, "targets_cut": 1}
    assert items[0]["prompt"].count("word") == 8  # the source cut to 8 tokens, the instruction kept
    assert len(tokenizer(trained(tokenizer, examples[1]), add_special_tokens=False)["input_ids"]) <= 10 + 3
    assert items[1]["reference"] == "long " * 40  # generations are scored against the whole target


def test_batched_generation_equals_one_by_one_in_fp32(tiny_llama, tokenizer):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32).eval()
    fmt = PromptFormat("{source}", encoder_decoder=False, chat=True, max_source_tokens=64)
    prompts = [fmt.prompt_ids(tokenizer, t) for t in ("un", "deux trois quatre cinq six sept", "huit neuf", "a " * 20)]
    assert len({len(p) for p in prompts}) == 4  # mixed lengths: the batch is left-padded
    with torch.inference_mode():  # the reference: transformers' generate, one prompt at a time
        alone = [model.generate(torch.tensor([p]), max_new_tokens=8, do_sample=False)[0, len(p) :] for p in prompts]
    alone = [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in alone]
    # greedy: continuous batching (2 rows at a time, joining as others finish, the common head prefilled once)
    batched, lengths = generate(model, tokenizer, prompts, Options(max_new_tokens=8, batch_size=2), False)
    assert batched == alone and all(0 <= n <= 8 for n in lengths)
    # beam search: transformers' generate on left-padded batches
    beams = Options(max_new_tokens=8, batch_size=4, num_beams=2)
    assert generate(model, tokenizer, prompts, beams, False)[0] == [
        generate(model, tokenizer, [p], beams, False)[0][0] for p in prompts
    ]


def test_translation_run_directory(tiny_llama, pairs, tmp_path):
    recipe = tiny_lm_recipe(tiny_llama, pairs, tmp_path / "run", task="translation", train={"max_steps": 6},
                            data={"source_lang": "fr", "target_lang": "en"}, eval={"num_generate": 3})  # fmt: skip
    run = tunelab.train(recipe, show_progress=False)
    info, m = run.info, run.metrics
    assert info["selection"] == {"metric": "chrf", "mode": "max"}  # the task's default metric
    assert info["data"]["model_kind"] == "decoder-only" and info["data"]["model_class"] == "AutoModelForCausalLM"
    assert info["prompt"]["template"] == "Translate the following French text into English.\n\n{source}"
    for row in (m["test"], m["base"]["test"]):
        assert {"rougeL", "rougeLsum", "bleu", "chrf", "exact_match", "token_f1", "gen_length", "hit_max",
                "perplexity"} <= set(row)  # fmt: skip
        assert row["generated"] == info["data"]["test"] and row["bleu_signature"].startswith("nrefs:1")
    assert "val_chrf" in json.loads((run.dir / "metrics.jsonl").read_text().splitlines()[-1])
    predictions = [json.loads(line) for line in (run.dir / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == info["data"]["test"] and set(predictions[0]) == {"source", "reference", "prediction"}
    saved = json.loads((run.dir / "model" / "prompt_template.json").read_text())
    assert saved == info["prompt"]
    card = (run.dir / "README.md").read_text()
    assert "Base model (zero-shot) vs fine-tuned" in card and "AutoModelForCausalLM" in card
    assert len(m["examples"]) == min(5, info["data"]["test"])
    loaded = tunelab.load(run.dir)
    assert loaded.predict([predictions[0]["source"]])[0]["generated"] == predictions[0]["prediction"]


def test_a_resumed_run_keeps_its_base_row(tiny_llama, pairs, tmp_path):
    from tunelab.runs.rundir import RunDir
    from tunelab.training.fit import Interrupted

    recipe = tiny_lm_recipe(tiny_llama, pairs, tmp_path / "cut", task="translation",
                            train={"max_steps": 6, "eval_every": 3}, eval={"num_generate": 2})  # fmt: skip

    def kill_at_4(step):
        if step == 4:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(Interrupted):
        tunelab.train(recipe, show_progress=False, on_step=kill_at_4)
    run = RunDir.open(tmp_path / "cut")
    base = run.info["base_eval"]
    base["test"]["chrf"] = -1.0  # planted: a resumed run that measured the base model again would overwrite it
    run.update_info(base_eval=base)
    resumed = tunelab.train(resume=tmp_path / "cut", show_progress=False)
    assert resumed.metrics["base"]["test"]["chrf"] == -1.0 and resumed.metrics["steps"] == 6


def test_without_generation_at_validation_the_checkpoint_is_picked_by_perplexity(tiny_llama, pairs, tmp_path):
    recipe = tiny_lm_recipe(tiny_llama, pairs, tmp_path / "run", task="summarization", train={"max_steps": 2},
                            eval={"num_generate": 0, "compare_base": False})  # fmt: skip
    run = tunelab.train(recipe, show_progress=False)
    assert run.info["selection"] == {"metric": "perplexity", "mode": "min"}
    recipe["eval"]["metric"] = "rougeL"
    recipe["train"]["output_dir"] = str(tmp_path / "run2")
    with pytest.raises(TunelabError, match="num_generate is 0"):
        tunelab.train(recipe, show_progress=False)
    shutil.rmtree(tmp_path / "run2", ignore_errors=True)
