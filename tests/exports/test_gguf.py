"""tunelab export --format gguf (tunelab/exports/gguf.py, modelfile.py): a tiny llama written as GGUF f16 and q8_0,
read back with plain transformers (the weights in llama.cpp's layout, the tokenizer, its special tokens and chat
template), its parity measured and bounded; the Ollama Modelfile checked as text; llama.cpp where installed.

The tiny model has a byte-level BPE vocabulary of a few hundred tokens (SmolLM2's special tokens and chat template):
transformers reads a 49k-token GGUF vocabulary in ~10 s, this one at once. Its weights are made to be held exactly by
both types (blocks of 32 integers up to 127 times a power of two: exact in float16, and Q8_0's own form), so the model
read back from either file must give the very same logits: any slip of layout, order or type shows.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import tunelab
from tests.conftest import ROOT, make_chats, tiny_llama_config, write_jsonl
from tunelab.errors import TunelabError
from tunelab.exports.gguf import permute
from tunelab.exports.modelfile import CHATML_GO, render_chatml

SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + "
    "message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
AWKWARD = [
    "Crème brûlée à Zürich, naïve façade — señor Ødegaard",
    "emoji 🤖🎉 and a family 👩‍👩‍👧 with 2024 numbers 3.14159",
    "<|im_start|>user\nmarkup inside<|im_end|>\n<|im_start|>assistant\n",
    "  leading spaces,\ttabs\nand\r\nnewlines  ",
    "日本語のテキストと中文",
]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """A width-32 model gains nothing from threads, and loses a lot on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A finished sft run as export reads it (run.json, config.yaml, model/): a random 2-layer llama, width 32, tied
    head, weights exact in float16 and Q8_0, 4 query heads sharing 2 key-value heads; a byte-level BPE tokenizer
    trained here, its embedding rows padded past the vocabulary."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    root = tmp_path_factory.mktemp("gguf-run")
    chats = write_jsonl(root / "chats.jsonl", [{"messages": [{"role": "user", "content": c["prompt"]},
                                                             {"role": "assistant", "content": c["response"]}]}
                                               for c in make_chats(60)])  # fmt: skip
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    corpus = [line for _ in range(3) for line in chats.read_text(encoding="utf-8").splitlines()] + AWKWARD
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=420, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))  # fmt: skip
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                        pad_token="<|im_end|>", unk_token="<|endoftext|>")  # fmt: skip
    tokenizer.chat_template = SMOLLM2_TEMPLATE
    model_dir = root / "run" / "model"
    tokenizer.save_pretrained(model_dir)
    torch.manual_seed(0)
    # eps exact in float32 too; a vocabulary of 420 tokens in 448 embedding rows
    config = tiny_llama_config(vocab_size=448, initializer_range=0.3, rms_norm_eps=2.0**-20)
    model = LlamaForCausalLM(config)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # each matrix: blocks of 32 integers in [-127, 127] times 2^-8, one of them +-127
        for p in (p for p in model.parameters() if p.ndim == 2):
            q = torch.randint(-127, 128, p.shape, generator=g).float()
            q.view(-1, 32)[:, 0] = 127 * (torch.randint(0, 2, (p.numel() // 32,), generator=g) * 2 - 1)
            p.copy_(q * 2.0**-8)
    model.save_pretrained(model_dir)
    run = model_dir.parent
    (run / "run.json").write_text(json.dumps({"task": "sft", "status": "completed"}), encoding="utf-8")
    (run / "config.yaml").write_text(f"task: sft\ndata:\n  train: {chats}\n", encoding="utf-8")
    return run


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("gguf-out")
    return {q: tunelab.export(tiny_run, out / q, format="gguf", quantize=q) for q in ("f16", "q8_0")}


def test_f16_read_back_by_transformers_is_the_run_s_model_exactly(tiny_run, exported):
    from transformers import AutoModelForCausalLM

    out = exported["f16"]
    assert sorted(p.name for p in out.iterdir()) == ["Modelfile", "manifest.json", "model-f16.gguf"]
    mine = AutoModelForCausalLM.from_pretrained(tiny_run / "model", dtype=torch.float32).eval()
    theirs = AutoModelForCausalLM.from_pretrained(out, gguf_file="model-f16.gguf", dtype=torch.float32).eval()
    assert theirs.config.tie_word_embeddings and theirs.config.num_key_value_heads == 2
    ids = torch.randint(3, 420, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert torch.equal(mine(ids).logits, theirs(ids).logits)  # float16 weights held exactly, layout undone exactly
    parity = json.loads((out / "manifest.json").read_text())["parity"]
    assert parity["prompts"] == 6 and parity["tokenizer"] == {"agreement": 1.0, "same": 6, "chat_template": True}
    assert parity["greedy"] | {"differ": []} == {"agreement": 1.0, "same_prompts": 6, "near_ties": 0, "tokens_each": 32,
                                                 "differ": []}  # fmt: skip
    assert parity["greedy"]["differ"] == []
    assert parity["teacher_forced"]["agreement"] == 1.0 and parity["teacher_forced"]["max_abs_logit_difference"] == 0
    assert parity["teacher_forced"]["positions"] > 6 * 3  # each answer's tokens and its <|im_end|>


def test_the_tokenizer_read_back_encodes_awkward_text_alike_and_keeps_template_and_specials(tiny_run, exported):
    from transformers import AutoTokenizer

    mine = AutoTokenizer.from_pretrained(tiny_run / "model")
    theirs = AutoTokenizer.from_pretrained(exported["f16"], gguf_file="model-f16.gguf")
    for text in AWKWARD:
        ids = mine(text, add_special_tokens=False)["input_ids"]
        assert theirs(text, add_special_tokens=False)["input_ids"] == ids, text
        assert theirs.decode(ids) == text
    assert mine("<|im_end|>", add_special_tokens=False)["input_ids"] == [2]  # chat markup stays whole
    assert (theirs.eos_token, theirs.bos_token, theirs.pad_token) == ("<|im_end|>", "<|im_start|>", "<|im_end|>")
    assert theirs.chat_template == SMOLLM2_TEMPLATE
    messages = [{"role": "user", "content": AWKWARD[1]}]
    assert theirs.apply_chat_template(messages, add_generation_prompt=True) == mine.apply_chat_template(
        messages, add_generation_prompt=True
    )


def test_the_file_holds_what_llama_cpp_reads(exported):
    import gguf

    reader = gguf.GGUFReader(exported["f16"] / "model-f16.gguf")
    field = lambda key: reader.fields[key].contents()  # noqa: E731
    assert field("general.architecture") == "llama" and field("tokenizer.ggml.model") == "gpt2"
    assert field("tokenizer.ggml.pre") == "gpt-2" and field("tokenizer.chat_template") == SMOLLM2_TEMPLATE
    assert (field("tokenizer.ggml.bos_token_id"), field("tokenizer.ggml.eos_token_id")) == (1, 2)
    assert field("tokenizer.ggml.add_bos_token") is False and field("llama.attention.head_count_kv") == 2
    tokens, types = field("tokenizer.ggml.tokens"), field("tokenizer.ggml.token_type")
    assert len(tokens) == 448 and tokens[420:] == [f"[PAD{i}]" for i in range(420, 448)]
    assert types[:3] == [3, 3, 3] and set(types[3:420]) == {1} and set(types[420:]) == {5}
    names = {t.name: t for t in reader.tensors}
    assert "output.weight" not in names and len(names) == 1 + 2 * 9 + 1  # tied head; 9 tensors a block; final norm
    assert names["blk.0.attn_norm.weight"].tensor_type.name == "F32"
    assert names["blk.0.attn_q.weight"].tensor_type.name == "F16"
    q8 = gguf.GGUFReader(exported["q8_0"] / "model-q8_0.gguf")
    assert {t.tensor_type.name for t in q8.tensors if len(t.shape) == 2} == {"Q8_0"}
    matrices = lambda r: sum(int(t.n_bytes) for t in r.tensors if len(t.shape) == 2)  # noqa: E731
    assert matrices(q8) / matrices(reader) == pytest.approx(34 / 64)  # 32 int8 + an fp16 scale, vs 32 float16


def test_q_and_k_rows_are_permuted_as_llama_cpp_converts_them(tiny_run, exported):
    """The stored attn_q is llama.cpp's permutation of q_proj (convert_hf_to_gguf.py: pairs (i, i + d/2) of each head
    become neighbours), here checked on a planted weight as well as on the file."""
    import gguf
    from safetensors.torch import load_file

    planted = np.arange(8 * 2, dtype=np.float32).reshape(8, 2)  # 2 heads of dimension 4: rows 0..3, 4..7
    assert permute(planted, 2)[:, 0].tolist() == [0, 4, 2, 6, 8, 12, 10, 14]  # rows 0,2,1,3 then 4,6,5,7
    weights = load_file(tiny_run / "model" / "model.safetensors")
    q = weights["model.layers.1.self_attn.q_proj.weight"].numpy()
    stored = next(
        t for t in gguf.GGUFReader(exported["f16"] / "model-f16.gguf").tensors if t.name == "blk.1.attn_q.weight"
    )
    assert np.array_equal(np.asarray(stored.data, dtype=np.float32).reshape(q.shape), permute(q, 4))


def test_q8_0_blocks_are_written_as_llama_cpp_reads_them(exported):
    """Weights Q8_0 holds exactly come back exactly: the blocks, their scales and their order are right."""
    parity = json.loads((exported["q8_0"] / "manifest.json").read_text())["parity"]
    assert parity["bounds"] == {"teacher_forced": 0.98} and parity["tokenizer"]["agreement"] == 1.0
    assert parity["teacher_forced"]["max_abs_logit_difference"] == 0 and parity["greedy"]["agreement"] == 1.0


def test_the_modelfile_is_ollama_chatml_with_the_run_s_system_prompt_and_stop_token(tiny_run, exported):
    from transformers import AutoTokenizer

    text = (exported["q8_0"] / "Modelfile").read_text()
    assert "\nFROM ./model-q8_0.gguf\n" in text and f'TEMPLATE """{CHATML_GO}"""' in text
    assert 'SYSTEM """You are a helpful AI assistant named SmolLM, trained by Hugging Face"""' in text
    assert [line for line in text.splitlines() if line.startswith("PARAMETER stop")] == ['PARAMETER stop "<|im_end|>"']
    # the Go template's rules, rendered in Python, give the prompt the run's Jinja template gives
    tokenizer = AutoTokenizer.from_pretrained(tiny_run / "model")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Who is it?"}]  # fmt: skip
    assert render_chatml("Be brief.", messages) == tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )


def test_a_parity_miss_is_one_error_and_writes_nothing(tiny_run, tmp_path, monkeypatch):
    from tunelab.exports import gguf as writer

    real = writer.tensors

    def unpermuted(model, quantize):  # a broken writer: q and k rows left in the Hugging Face layout
        for name, array, kind in real(model, quantize):
            if "attn_q" in name or "attn_k" in name:
                heads = model.config.num_attention_heads if "attn_q" in name else model.config.num_key_value_heads
                rows = array.shape[0]
                array = array.reshape(heads, rows // heads // 2, 2, -1).swapaxes(1, 2).reshape(array.shape)
            yield name, array, kind

    monkeypatch.setattr(writer, "tensors", unpermuted)
    with pytest.raises(TunelabError, match=r"does not match the run's model on 6 held-out prompts: teacher_forced 0\."):
        tunelab.export(tiny_run, tmp_path / "out", format="gguf")
    assert list(tmp_path.iterdir()) == []


def test_held_out_prompts_come_from_check_data_or_the_error_says_to_give_them(tiny_run, tmp_path):
    from tunelab.exports.gguf import held_out

    given = write_jsonl(tmp_path / "check.jsonl", [{"prompt": "Say hi", "response": "Hi."}] * 3)
    assert held_out(tiny_run, given) == [([{"role": "user", "content": "Say hi"}], "Hi.")] * 3
    # the v0.1.0 fixture run's training file is gone (it lived in a temporary folder): the error names the way out
    with pytest.raises(TunelabError, match="--check-data FILE"):
        tunelab.export(ROOT / "tests" / "fixtures" / "runs" / "v0.1.0" / "sft", tmp_path / "out", format="gguf")
    assert not (tmp_path / "out").exists()


def test_an_architecture_other_than_llama_is_refused_naming_what_is_supported(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    config = json.loads((run / "model" / "config.json").read_text())
    (run / "model" / "config.json").write_text(json.dumps(config | {"architectures": ["Qwen2ForCausalLM"]}))
    with pytest.raises(TunelabError, match=r"a Qwen2ForCausalLM model; the GGUF export writes llama-architecture"):
        tunelab.export(run, tmp_path / "out", format="gguf")


def test_llama_cpp_answers_as_the_run_does(tiny_run, exported):
    """Where llama-cpp-python is installed (pip install -e ".[llamacpp]"): llama.cpp's greedy tokens from the f16 file
    equal transformers' from the run's model, for every held-out prompt."""
    llama_cpp = pytest.importorskip("llama_cpp")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunelab.exports.gguf import encode, held_out

    tokenizer = AutoTokenizer.from_pretrained(tiny_run / "model")
    model = AutoModelForCausalLM.from_pretrained(tiny_run / "model", dtype=torch.float32).eval()
    llm = llama_cpp.Llama(str(exported["f16"] / "model-f16.gguf"), n_ctx=256, verbose=False)
    for prompt, answer in held_out(tiny_run, None):
        ids, _ = encode(tokenizer, prompt, answer, chat=True)
        text = tokenizer.decode(ids)
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == ids
        ours = model.generate(torch.tensor([ids]), max_new_tokens=16, do_sample=False, eos_token_id=2)[0, len(ids) :]
        theirs = []
        for token in llm.generate(ids, temp=0.0, top_k=1, reset=True):
            if token == 2 or len(theirs) == 16:
                break
            theirs.append(token)
        assert theirs == [t for t in ours.tolist() if t != 2]


def test_an_lm_run_continues_text_and_is_checked_on_the_given_documents(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "run.json").write_text(json.dumps({"task": "lm"}))
    (run / "config.yaml").write_text("task: lm\n")
    docs = write_jsonl(
        tmp_path / "docs.jsonl", [{"text": f"{c['prompt']} {c['response']} and so on"} for c in make_chats(5)]
    )
    out = tunelab.export(run, tmp_path / "out", format="gguf", check_data=docs)
    parity = json.loads((out / "manifest.json").read_text())["parity"]
    assert parity["prompts"] == 5 and parity["greedy"]["agreement"] == 1.0
    assert parity["teacher_forced"]["max_abs_logit_difference"] == 0
    text = (out / "Modelfile").read_text()
    assert 'TEMPLATE """{{ .Prompt }}"""' in text and "SYSTEM" not in text  # no chat template applied
    assert [line for line in text.splitlines() if line.startswith("PARAMETER stop")] == ['PARAMETER stop "<|im_end|>"']
