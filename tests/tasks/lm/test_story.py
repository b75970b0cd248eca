"""Causal-LM fine-tuning (sft, lm) on a tiny random llama with SmolLM2's real tokenizer and chat template."""

from __future__ import annotations

import json
import signal

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tunelab
from tests.conftest import tiny_lm_recipe
from tunelab.errors import TunelabError


def losses(run_dir):
    return [r["loss"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


@pytest.fixture(scope="module")
def tokenizer(smollm2_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)


@pytest.fixture(scope="module")
def model(tiny_llama):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_llama)


CHAT = [
    {"role": "user", "content": "Who wrote Hamlet?"},
    {"role": "assistant", "content": "Shakespeare."},
    {"role": "user", "content": "When?"},
    {"role": "assistant", "content": "Around 1600."},
]


# ------------------------------------------------------------------ template and masking


def test_only_assistant_tokens_train_and_eos_is_trained_once_per_reply(tokenizer):
    from tunelab.tasks.lm.chat import render

    s = render(tokenizer, CHAT)
    trained = [t for t, label in zip(s["input_ids"], s["labels"]) if label != -100]
    assert all(label in (-100, tok) for tok, label in zip(s["input_ids"], s["labels"]))
    text = tokenizer.decode(trained)
    assert text == "Shakespeare.<|im_end|>\nAround 1600.<|im_end|>\n"
    assert trained.count(tokenizer.eos_token_id) == 2  # each reply ends with EOS, and it is trained
    # the rendering starts with exactly one BOS (the template's own; the tokenizer adds none on top)
    assert s["input_ids"][0] == tokenizer.bos_token_id and s["input_ids"][1] != tokenizer.bos_token_id
    assert tokenizer.decode(s["input_ids"]) == tokenizer.apply_chat_template(CHAT, tokenize=False)
    everything = render(tokenizer, CHAT, train_on="all")
    assert everything["labels"][1:] == everything["input_ids"][1:]


def test_preview_marks_the_trained_tokens(tokenizer):
    from tunelab.tasks.lm.chat import preview

    shown = preview(tokenizer, CHAT, markup=False)
    assert "«Shakespeare.<|im_end|>\n»" in shown and "«Who wrote" not in shown


@pytest.mark.parametrize(
    "row, message",
    [
        ({"messages": []}, "empty 'messages'"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "no assistant turn"),
        (
            {"messages": [{"role": "robot", "content": "hi"}, {"role": "assistant", "content": "x"}]},
            "unknown role 'robot'",
        ),
        ({"messages": [{"role": "user", "content": " "}, {"role": "assistant", "content": "x"}]}, "empty or non-text"),
        ({"prompt": "hi", "response": ""}, "empty 'response'"),
    ],
)
def test_bad_chats_are_clear_errors(tmp_path, row, message):
    from tunelab.tasks.lm.chat import read_chats

    path = tmp_path / "bad.jsonl"
    path.write_text(
        json.dumps({"messages": [{"role": "user", "content": "ok"}, {"role": "assistant", "content": "fine"}]})
        + "\n"
        + json.dumps(row)
        + "\n"
    )
    if "prompt" in row:
        path.write_text(json.dumps({"prompt": "ok", "response": "fine"}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(TunelabError, match=message) as e:
        read_chats(path)
    assert "line 2" in str(e.value)


def test_formats_are_detected(tmp_path):
    from tunelab.tasks.lm.chat import read_chats

    alpaca = tmp_path / "a.jsonl"
    alpaca.write_text(json.dumps({"instruction": "Translate", "input": "chat", "output": "cat"}) + "\n")
    assert read_chats(alpaca)[0]["messages"] == [
        {"role": "user", "content": "Translate\n\nchat"},
        {"role": "assistant", "content": "cat"},
    ]
    pr = tmp_path / "p.csv"
    pr.write_text("prompt,response\nhi,hello\n")
    assert read_chats(pr)[0]["messages"][1] == {"role": "assistant", "content": "hello"}


def test_overlong_samples_are_truncated_and_counted_or_rejected(tokenizer):
    from tunelab.tasks.lm.chat import encode_chats

    records = [{"messages": CHAT, "line": 3, "source": "x.jsonl"}]
    samples, counts = encode_chats(records, tokenizer, 45, "assistant", "truncate")
    assert len(samples[0]["input_ids"]) == 45 and counts["truncated"] == 1
    _, counts = encode_chats(records, tokenizer, 30, "assistant", "truncate")  # cut before any reply: nothing to train
    assert counts["dropped"] == 1
    with pytest.raises(TunelabError, match="x.jsonl, line 3.*data.max_length=45"):
        encode_chats(records, tokenizer, 45, "assistant", "error")


# ------------------------------------------------------------------ packing and the loss


def _samples(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for k in range(n):
        ids = torch.randint(3, 49152, (int(torch.randint(4, 20, (1,), generator=g)),), generator=g).tolist()
        labels = [-100] + [t if (i + k) % 3 else -100 for i, t in enumerate(ids[1:])]
        out.append({"input_ids": ids, "labels": labels})
    return out


def test_packed_loss_equals_unpacked_loss(model):
    from tunelab.tasks.lm.packing import as_rows
    from tunelab.tasks.lm.spec import CausalLM

    spec, samples = CausalLM(pad_id=2), _samples()
    packed, unpacked = spec.collate(as_rows(samples, 48, True)), spec.collate(as_rows(samples, 48, False))
    assert packed["input_ids"].shape[0] < unpacked["input_ids"].shape[0]  # several samples share a row
    assert spec.units(packed) == spec.units(unpacked)
    _, loss_packed = spec.forward(model, packed)
    _, loss_unpacked = spec.forward(model, unpacked)
    torch.testing.assert_close(loss_packed, loss_unpacked, rtol=1e-5, atol=1e-5)
    # and one by one, each in its own forward pass
    alone = sum(spec.forward(model, spec.collate(as_rows([s], 48, False)))[1] for s in samples)
    torch.testing.assert_close(loss_packed, alone, rtol=1e-5, atol=1e-5)


def test_a_sample_longer_than_a_packed_row_is_a_clear_error():
    from tunelab.tasks.lm.packing import as_rows

    with pytest.raises(
        TunelabError,
        match="chats.jsonl: a sample of 60 tokens does not fit a packed row of 48 tokens .* Raise data.max_length",
    ):
        as_rows([{"input_ids": [5] * 60, "labels": [5] * 60}], 48, True, "chats.jsonl")


def test_chunked_cross_entropy_equals_plain_loss_and_gradients():
    from tunelab.tasks.lm.spec import chunked_cross_entropy

    torch.manual_seed(0)
    head = torch.nn.Linear(16, 50, bias=True)
    hidden = torch.randn(37, 16, requires_grad=True)
    targets = torch.randint(0, 50, (37,))
    plain = F.cross_entropy(head(hidden), targets, reduction="sum")
    grads = torch.autograd.grad(plain, [hidden, head.weight, head.bias])
    chunked = chunked_cross_entropy(hidden, head, targets, chunk=8)
    chunked_grads = torch.autograd.grad(chunked, [hidden, head.weight, head.bias])
    torch.testing.assert_close(chunked, plain)
    for a, b in zip(chunked_grads, grads):
        torch.testing.assert_close(a, b)
    with torch.no_grad():
        torch.testing.assert_close(chunked_cross_entropy(hidden, head, targets, chunk=8), plain.detach())


def test_chunked_cross_entropy_under_bf16_autocast_with_a_frozen_head():
    """The LoRA case: the (tied) head is frozen, only the hidden states need gradients; matmuls in bf16."""
    from tunelab.tasks.lm.spec import chunked_cross_entropy

    torch.manual_seed(0)
    head = torch.nn.Linear(32, 300, bias=False).requires_grad_(False)
    hidden = torch.randn(50, 32, requires_grad=True)
    targets = torch.randint(0, 300, (50,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain = F.cross_entropy(head(hidden).float(), targets, reduction="sum")
        chunked = chunked_cross_entropy(hidden, head, targets, chunk=16)
    (grad_plain,) = torch.autograd.grad(plain, [hidden])
    (grad_chunked,) = torch.autograd.grad(chunked, [hidden])
    torch.testing.assert_close(chunked, plain, rtol=1e-3, atol=1e-2)
    torch.testing.assert_close(grad_chunked, grad_plain, rtol=2e-2, atol=2e-3)
    assert grad_chunked.dtype == torch.float32 and head.weight.grad is None


def test_model_loss_equals_transformers_loss(model):
    """The spec's summed loss over trained tokens equals transformers' own (mean) causal-LM loss x tokens."""
    from tunelab.tasks.lm.packing import as_rows
    from tunelab.tasks.lm.spec import CausalLM

    spec = CausalLM(pad_id=2, chunk=5)
    batch = spec.collate(as_rows(_samples(3), 48, False))
    _, loss = spec.forward(model, batch)
    ref = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], labels=batch["labels"]).loss
    torch.testing.assert_close(loss / spec.units(batch), ref, rtol=1e-5, atol=1e-6)


def test_gradient_checkpointing_keeps_the_lora_gradients(tiny_llama):
    """Recomputing activations (train.gradient_checkpointing) must give the LoRA weights the same gradients:
    a reentrant checkpoint over frozen inputs would silently give them none."""
    from tunelab.config import MethodConfig, ModelConfig
    from tunelab.methods import apply_method
    from tunelab.models.load import load_causal_lm, resolve
    from tunelab.tasks.lm.packing import as_rows
    from tunelab.tasks.lm.spec import CausalLM

    spec = CausalLM(pad_id=2)
    batch = spec.collate(as_rows(_samples(4), 48, True))
    grads = []
    for checkpointing in (False, True):
        cfg = ModelConfig(name=str(tiny_llama), gradient_checkpointing=checkpointing)
        torch.manual_seed(0)
        model = apply_method(
            load_causal_lm(resolve(cfg), cfg), MethodConfig(name="lora", r=4, dropout=0.0), "CAUSAL_LM"
        )
        model.train()
        spec.forward(model, batch)[1].backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.requires_grad})
    assert grads[0].keys() == grads[1].keys() and all(g is not None for g in grads[1].values())
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def sft_run(tiny_llama, tmp_path_factory):
    from tests.conftest import make_chats

    folder = tmp_path_factory.mktemp("sft")
    chats = folder / "chats.jsonl"
    chats.write_text("".join(json.dumps(c) + "\n" for c in make_chats(60)), encoding="utf-8")
    return tunelab.train(
        tiny_lm_recipe(tiny_llama, chats, folder / "run", method={"name": "lora", "r": 4}), show_progress=False
    )


def test_sft_run_directory_generation_and_merged_model(sft_run, tiny_llama):
    d = sft_run.dir
    for name in (
        "run.json",
        "metrics.json",
        "curves.png",
        "README.md",
        "model/config.json",
        "adapter/adapter_config.json",
    ):
        assert (d / name).exists(), name
    m = json.loads((d / "metrics.json").read_text())
    assert {"perplexity", "loss", "tokens"} <= set(m["test"]) and {
        "exact_match",
        "token_f1",
        "rougeL",
        "contains_answer",
    } <= set(m["generation"])
    for run in (m["generation"], m["base"]["generation"]):  # tunelab.metrics.text's scale: 0-100
        assert all(0 <= run[k] <= 100 for k in ("exact_match", "token_f1", "rougeL", "contains_answer"))
        assert run["generated"] == 4
    assert m["base"]["test"]["perplexity"] > 0 and len(m["generation"]["samples"]) == 4
    assert "Base model vs fine-tuned" in (d / "README.md").read_text()
    recorded = (d / "config.yaml").read_text()  # sft and lora: no other family's fields, no mlm's, no frozen's
    assert "train_on: assistant" in recorded and "r: 4" in recorded and "num_generate" in recorded
    assert not [k for k in ("tag_scheme", "augment", "mlm_probability", "unfreeze_top_layers") if k in recorded]
    # model/ is plain transformers, keeps the chat template, and matches the un-merged LoRA model
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(d / "model")
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    ids = tok(tok.apply_chat_template(CHAT, tokenize=False), add_special_tokens=False, return_tensors="pt")["input_ids"]
    merged = AutoModelForCausalLM.from_pretrained(d / "model").eval()
    unmerged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), d / "adapter").eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, unmerged(ids).logits, rtol=0, atol=1e-4)
    gen = tunelab.load(d)
    assert isinstance(gen.generate("Who wrote Hamlet?", max_new_tokens=3)[0], str)


def test_dora_run_merges_to_the_same_logits(tiny_llama, chat_jsonl, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    recipe = tiny_lm_recipe(
        tiny_llama,
        chat_jsonl,
        tmp_path / "run",
        method={"name": "lora", "r": 4, "dora": True},
        train={"max_steps": 3},
        eval={"num_generate": 0, "compare_base": False},
    )
    d = tunelab.train(recipe, show_progress=False).dir
    assert json.loads((d / "adapter" / "adapter_config.json").read_text())["use_dora"] is True
    ids = torch.randint(3, 100, (2, 12))
    merged = AutoModelForCausalLM.from_pretrained(d / "model").eval()
    unmerged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), d / "adapter").eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, unmerged(ids).logits, rtol=0, atol=1e-4)
        assert not torch.allclose(
            merged(ids).logits, AutoModelForCausalLM.from_pretrained(tiny_llama).eval()(ids).logits, atol=1e-4
        )


def test_sft_resume_reproduces_the_uninterrupted_run(tiny_llama, chat_jsonl, tmp_path):
    from tunelab.training.fit import Interrupted

    def recipe(out):
        return tiny_lm_recipe(
            tiny_llama,
            chat_jsonl,
            out,
            method={"name": "lora", "r": 4},
            model={"dropout": 0.1},
            train={"max_steps": 6, "eval_every": 2},
            eval={"compare_base": False, "num_generate": 0},
        )

    full = tunelab.train(recipe(tmp_path / "full"), show_progress=False)

    def kill_at_3(step):
        if step == 3:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(Interrupted):
        tunelab.train(recipe(tmp_path / "cut"), show_progress=False, on_step=kill_at_3)
    resumed = tunelab.train(resume=tmp_path / "cut", show_progress=False)
    np.testing.assert_allclose(losses(resumed.dir), losses(full.dir), rtol=0, atol=1e-6)
    assert resumed.metrics["test"]["loss"] == pytest.approx(full.metrics["test"]["loss"], abs=1e-6)


def test_lm_packing_and_token_budget(tiny_llama, text_dir, tmp_path):
    recipe = tiny_lm_recipe(
        tiny_llama,
        text_dir,
        tmp_path / "run",
        task="lm",
        data={"train": str(text_dir), "packing": True, "max_length": 32},
        train={"max_steps": None, "epochs": 1, "max_tokens": 600, "batch_size": 4},
    )
    run = tunelab.train(recipe, show_progress=False)
    info = run.info
    assert (
        info["data"]["budget_reached"] and info["data"]["tokens"]["train"] < 600 + 200
    )  # the stream stopped near the budget
    assert run.metrics["steps"] == int(np.ceil(600 / (32 * 4))) or run.metrics["steps"] <= 6
    assert run.metrics["base"]["test"]["perplexity"] > run.metrics["test"]["perplexity"] * 0.5


def test_frozen_head_only_is_refused_for_causal_lms(tiny_llama, chat_jsonl, tmp_path):
    with pytest.raises(TunelabError, match="tie"):
        tunelab.train(
            tiny_lm_recipe(tiny_llama, chat_jsonl, tmp_path / "run", method={"name": "frozen"}), show_progress=False
        )


def test_cli_generate_chat_and_data_preview(sft_run, tiny_llama, chat_jsonl, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from tunelab.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["generate", str(sft_run.dir), "Who wrote Hamlet?", "--max-new-tokens", "3"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["chat", str(sft_run.dir), "--max-new-tokens", "3"], input="hello\n\n")
    assert result.exit_code == 0 and "bot> " in result.output, result.output
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump({"task": "sft", "data": {"train": str(chat_jsonl)}, "model": {"name": str(tiny_llama)}})
    )
    result = runner.invoke(app, ["data", "preview", str(recipe), "-n", "1"])
    assert result.exit_code == 0 and "«" in result.output and "<|im_start|>assistant" in result.output, result.output


def test_task_defaults_pick_the_generative_builtins():
    from tunelab.config import load_config

    assert (load_config({"task": "sft"}).data.dataset, load_config({"task": "sft"}).model.name) == (
        "chatterbot",
        "smollm2",
    )
    assert load_config({"task": "lm"}).data.dataset == "news" and load_config({"task": "mlm"}).model.name == "minilm"
    assert load_config({}).data.dataset == "movie_reviews"


def test_gradient_accumulation_is_normalised_over_the_steps_tokens(tiny_llama, chat_jsonl, tmp_path):
    """batch 8 x accumulation 1 == batch 8 of micro-batches of 2.

    The loss is divided by the step's trained tokens, not averaged per micro-batch."""

    def recipe(out, **train):
        return tiny_lm_recipe(
            tiny_llama,
            chat_jsonl,
            out,
            method={"name": "lora", "r": 4, "dropout": 0.0},
            train={"max_steps": 4, **train},
            eval={"compare_base": False, "num_generate": 0},
        )

    a = tunelab.train(recipe(tmp_path / "a"), show_progress=False)
    b = tunelab.train(recipe(tmp_path / "b", micro_batch_size=2), show_progress=False)
    np.testing.assert_allclose(losses(a.dir), losses(b.dir), rtol=1e-5, atol=1e-6)
