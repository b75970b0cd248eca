"""Text-to-text with encoder-decoder models: tiny random T5 and BART, each with a word-level tokenizer built here
(nothing downloaded), trained through the real entry points on a toy translation ("deux rouge" -> "two red")."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

import tunelab
from tests.conftest import tiny_lm_recipe, write_jsonl
from tests.test_errors import run_cli
from tunelab.errors import TunelabError

NUMBERS = dict(
    zip(
        "zéro un deux trois quatre cinq six sept huit neuf dix onze douze treize quatorze quinze seize vingt trente "
        "quarante cinquante soixante".split(),
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen twenty "
        "thirty forty fifty sixty".split(),
    )
)
COLOURS = dict(
    zip("rouge bleu vert jaune noir blanc gris rose".split(), "red blue green yellow black white grey pink".split())
)
# prompts of 1 to 7 words (2 to 8 tokens with EOS) for the batching tests
MIXED = ["deux rouge", "six", "dix bleu vert quatre", "un", "treize gris jaune noir blanc six", "vingt", "sept rose",
         "trois noir un cinq huit neuf zéro"]  # fmt: skip


def word_tokenizer():
    """A word-level tokenizer over the toy vocabulary that, like T5's, appends EOS to every text (and target)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = ["<pad>", "</s>", "<unk>", "<s>", *NUMBERS, *COLOURS, *NUMBERS.values(), *COLOURS.values()]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(dict.fromkeys(words))}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tok.decoder = decoders.WordPiece()  # words joined by spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", bos_token="<s>"
    )


def save_tiny(out: Path, kind: str) -> Path:
    """A random 2+2-layer T5 (width 32) or BART (width 64) with the word tokenizer, as a plain HF directory."""
    from transformers import BartConfig, BartForConditionalGeneration, T5Config, T5ForConditionalGeneration

    tok = word_tokenizer()
    tok.save_pretrained(out)
    torch.manual_seed(0)
    if kind == "t5":
        config = T5Config(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                          relative_attention_num_buckets=32, dropout_rate=0.0, pad_token_id=0, eos_token_id=1,
                          decoder_start_token_id=0)  # fmt: skip
        T5ForConditionalGeneration(config).save_pretrained(out)
    else:  # init_std 0.1: at BART's 0.02 the tied output embeddings of a random model give near-uniform logits that
        # LoRA (embeddings frozen) cannot sharpen in a few steps; pretrained weights are not that small
        config = BartConfig(vocab_size=len(tok), d_model=64, encoder_layers=2, decoder_layers=2,
                            encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128,
                            decoder_ffn_dim=128, max_position_embeddings=64, pad_token_id=0, eos_token_id=1,
                            bos_token_id=3, decoder_start_token_id=1, forced_eos_token_id=1, init_std=0.1)  # fmt: skip
        BartForConditionalGeneration(config).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny_t5(tmp_path_factory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("tiny-t5"), "t5")


@pytest.fixture(scope="module")
def tiny_bart(tmp_path_factory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("tiny-bart"), "bart")


@pytest.fixture(scope="module")
def pairs_jsonl(tmp_path_factory) -> Path:
    """176 pairs "deux rouge" -> "two red" (every number x colour, shuffled): test pairs are new combinations."""
    rows = [{"source": f"{n} {c}", "target": f"{NUMBERS[n]} {COLOURS[c]}"} for n in NUMBERS for c in COLOURS]
    random.Random(0).shuffle(rows)
    return write_jsonl(tmp_path_factory.mktemp("pairs") / "pairs.jsonl", rows)


def recipe(model_dir: Path, data: Path, out: Path, method: dict, lr: float, steps: int) -> dict:
    return tiny_lm_recipe(
        model_dir,
        data,
        out,
        task="translation",
        data={"prompt": "{source}"},  # the default template's words are not in the toy vocabulary
        method=method,
        optim={"lr": lr},
        train={"max_steps": steps, "batch_size": 16, "eval_every": steps // 2},
    )


@pytest.fixture(scope="module")
def t5_full(tiny_t5, pairs_jsonl, tmp_path_factory):
    out = tmp_path_factory.mktemp("t5-full") / "run"
    return tunelab.train(recipe(tiny_t5, pairs_jsonl, out, {"name": "full"}, 1e-2, 80), show_progress=False)


@pytest.fixture(scope="module")
def bart_lora(tiny_bart, pairs_jsonl, tmp_path_factory):
    out = tmp_path_factory.mktemp("bart-lora") / "run"
    return tunelab.train(recipe(tiny_bart, pairs_jsonl, out, {"name": "lora"}, 1e-2, 60), show_progress=False)


def losses(run_dir: Path) -> list[float]:
    return [r["loss"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


def load_plain(path: Path):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    return AutoTokenizer.from_pretrained(path), AutoModelForSeq2SeqLM.from_pretrained(path).eval()


# ------------------------------------------------------------------ full and LoRA learn the mapping


@pytest.mark.parametrize("name", ["t5_full", "bart_lora"])
def test_loss_falls_and_exact_match_rises(name, request):
    run = request.getfixturevalue(name)
    loss = losses(run.dir)
    assert loss[-1] < 0.5 * loss[0]
    metrics = json.loads((run.dir / "metrics.json").read_text())
    assert metrics["base"]["test"]["exact_match"] == 0.0 and metrics["test"]["exact_match"] >= 80.0
    assert metrics["test"]["perplexity"] < metrics["base"]["test"]["perplexity"]
    assert metrics["test"]["generated"] == run.info["data"]["test"] > 0  # the whole test split generated
    info = run.info
    assert info["data"]["model_kind"] == "encoder-decoder" and info["data"]["model_class"] == "AutoModelForSeq2SeqLM"
    assert info["prompt"]["encoder_decoder"] and not info["preprocessing"]["packing"]
    assert "AutoModelForSeq2SeqLM" in (run.dir / "README.md").read_text()


def test_lora_targets_every_projection_of_t5_and_bart(bart_lora, tiny_t5):
    from transformers import AutoModelForSeq2SeqLM

    from tunelab.methods.lora import default_targets

    adapter = json.loads((bart_lora.dir / "adapter" / "adapter_config.json").read_text())
    assert adapter["task_type"] == "SEQ_2_SEQ_LM"
    assert sorted(adapter["target_modules"]) == sorted(["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"])
    assert default_targets(AutoModelForSeq2SeqLM.from_pretrained(tiny_t5)) == ["q", "k", "v", "o", "wi", "wo"]


@pytest.mark.parametrize("name", ["t5_full", "bart_lora"])
def test_model_dir_loads_with_plain_transformers_and_generates_as_the_predictor(name, request):
    run = request.getfixturevalue(name)
    texts = ["deux rouge", "seize noir", "un", "vingt bleu jaune"]
    predicted = [p["generated"] for p in tunelab.load(run.dir).predict(texts)]
    tok, model = load_plain(run.dir / "model")  # LoRA: the adapter merged into plain weights
    plain = []
    for text in texts:
        out = model.generate(**tok(text, return_tensors="pt"), max_new_tokens=4, do_sample=False)
        plain.append(tok.decode(out[0], skip_special_tokens=True).strip())
    assert predicted == plain and predicted[:2] == ["two red", "sixteen black"]


# ------------------------------------------------------------------ frozen


@pytest.mark.parametrize("kind", ["t5", "bart"])
def test_frozen_unfreezes_the_top_decoder_blocks(kind, tmp_path):
    from transformers import AutoModelForSeq2SeqLM

    from tunelab.methods.frozen import freeze

    model = freeze(AutoModelForSeq2SeqLM.from_pretrained(save_tiny(tmp_path, kind)), 1)
    decoder = model.get_decoder()
    top = decoder.block[-1] if kind == "t5" else decoder.layers[-1]
    trained = {id(p) for p in model.parameters() if p.requires_grad}
    assert trained == {id(p) for p in top.parameters()}  # not the encoder's top layer, nor T5's 3 sub-layers
    with pytest.raises(TunelabError, match="2 decoder layers"):
        freeze(model, 3)


def test_frozen_through_the_cli_trains_only_the_top_decoder_block(
    tiny_bart, pairs_jsonl, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "run"
    code, text = run_cli(monkeypatch, capsys, "train", "--task", "translation", "--model", tiny_bart, "--train",
                         pairs_jsonl, "--method", "frozen", "--max-steps", "24", "--output-dir", out, "--quiet",
                         "--set", "method.unfreeze_top_layers=1", "--set", "data.prompt='{source}'", "--set",
                         "optim.lr=1e-2", "--set", "train.precision=fp32", "--set", "train.batch_size=16", "--set",
                         "eval.num_generate=0", "--set", "eval.compare_base=false", "--set", "model.dropout=0", "--set",
                         "train.num_threads=1")  # fmt: skip
    assert code == 0, text
    info = json.loads((out / "run.json").read_text())
    _, model = load_plain(tiny_bart)
    assert info["trainable_params"] == sum(p.numel() for p in model.get_decoder().layers[-1].parameters())
    assert info["data"]["model_kind"] == "encoder-decoder" and info["method"]["name"] == "frozen"
    loss = losses(out)
    assert loss[-1] < 0.7 * loss[0]


# ------------------------------------------------------------------ generation and loss equivalences


@pytest.mark.parametrize("name", ["t5_full", "bart_lora"])
def test_batched_generation_equals_one_by_one(name, request):
    from tunelab.tasks.seq2seq.generation import Options, generate

    tok, model = load_plain(request.getfixturevalue(name).dir / "model")
    prompts = [tok(text)["input_ids"] for text in MIXED]
    assert {len(p) for p in prompts} == {2, 3, 5, 7, 8}  # batches of 4 by length: [8, 7, 5, 3] and [3, 2, 2, 2]
    batched = generate(model, tok, prompts, Options(max_new_tokens=6, batch_size=4), encoder_decoder=True)
    alone = generate(model, tok, prompts, Options(max_new_tokens=6, batch_size=1), encoder_decoder=True)
    assert batched == alone
    assert batched[0][0] == "two red" and len(set(batched[0])) >= 6  # real outputs, not one repeated string


@pytest.mark.parametrize("kind", ["t5", "bart"])
def test_encoder_decoder_loss_is_transformers_mean_times_target_tokens(kind, tmp_path):
    from tunelab.tasks.seq2seq.encode import PromptFormat, encode
    from tunelab.tasks.seq2seq.spec import EncoderDecoderLM

    tok, model = load_plain(save_tiny(tmp_path, kind))
    targets = ["two red", "six", "ten blue green four", "one one", "thirteen grey"]
    records = [{"source": s, "target": t} for s, t in zip(MIXED, targets)]
    rows, _, _ = encode(records, tok, PromptFormat("{source}", True, False, 384), max_target_tokens=128)
    assert all(r["labels"][-1] == tok.eos_token_id for r in rows)  # the target ends with EOS, and it is trained
    spec = EncoderDecoderLM(tok.pad_token_id)
    batch = spec.collate(rows)
    with torch.no_grad():
        (summed, n), _ = spec.forward(model, batch)
        mean = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
    assert n == spec.units(batch) == sum(len(tok(text_target=t)["input_ids"]) for t in targets)
    assert summed.item() == pytest.approx(mean.item() * n.item(), rel=1e-5)
