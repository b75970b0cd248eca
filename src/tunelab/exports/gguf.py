"""format "gguf" (`--quantize f16|q8_0`, f16 by default): a causal-LM run's merged model as one GGUF file for
llama.cpp and Ollama, written with the `gguf` library, an Ollama Modelfile beside it, and its parity measured.

What goes in (the keys llama.cpp reads, as in the built-in SmolLM2 GGUF):
  llama.*            sizes, heads, RMS-norm epsilon, rope base (llama architecture only: LlamaForCausalLM)
  tokenizer.ggml.*   byte-level BPE ("gpt2"): every token in id order with its type (normal, control = special,
                     user-defined = added), the merges, the pre-tokenizer's name, bos/eos/unk/padding ids, whether
                     BOS/EOS are added; tokenizer.chat_template: the run's chat template (the one it trained with)
  tensors            llama.cpp's names (gguf.get_tensor_name_map); q_proj and k_proj rows permuted from the Hugging
                     Face rotary layout (the two halves of each head) to llama.cpp's (interleaved pairs), as llama.cpp's
                     convert_hf_to_gguf.py does; no output.weight when the head is tied to the embeddings (SmolLM2)
  types              f16: matrices float16; q8_0: matrices Q8_0 (blocks of 32, one fp16 scale), a matrix whose rows
                     do not split into blocks of 32 float16; vectors (norms) always float32

Parity, measured before the export is kept: the file read back with plain transformers (`gguf_file=`, de-quantised)
against the run's merged model in fp32, on up to 20 held-out prompts (the run's test split, or --check-data FILE):
  tokenizer       the file's tokenizer renders (chat template) and encodes every prompt and answer as the run's does
  greedy          the first 32 greedy tokens of each prompt (f16: every prompt the same, or its first difference a tie:
                  the run's own top two tokens there nearer than the largest logit difference measured)
  teacher_forced  the top-1 next token at each position of the reference answers (>= 99.5% f16, >= 98% q8_0)
A bound missed is a TunelabError with the numbers; the dispatcher (write.py) then removes the folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from tunelab.errors import TunelabError
from tunelab.exports.manifest import write_manifest
from tunelab.exports.modelfile import end_of_turn, modelfile
from tunelab.models.decode import stop_ids

ARCHITECTURES = ("LlamaForCausalLM",)  # what this writer knows the tensor layout of
# held-out prompts checked; greedy tokens, answer tokens and prompt tokens (its last ones: lm documents are long) each
PROMPTS, GREEDY_TOKENS, ANSWER_TOKENS, PROMPT_TOKENS = 20, 32, 64, 256
BOUNDS = {"f16": {"greedy": 1.0, "teacher_forced": 0.995}, "q8_0": {"teacher_forced": 0.98}}

# tokenizers.json pre-tokenizers -> llama.cpp's name for the same text splitting (tokenizer.ggml.pre)
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def write(run_path: Path, out: Path, quantize: Optional[str] = None, check_data: Optional[Path] = None) -> Path:
    """out/model-<quantize>.gguf, out/Modelfile, out/manifest.json (with the parity measured); `out` is the empty
    temporary folder write.py made."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quantize = quantize or "f16"
    run_path, out = Path(run_path), Path(out)
    model_dir = run_path / "model"
    check_architecture(model_dir)
    held = held_out(run_path, check_data)
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    name = f"model-{quantize}.gguf"
    write_gguf(model, tokenizer, out / name, quantize, title=run_path.name)
    chat = _chat(run_path)
    ends = tuple(tokenizer.convert_ids_to_tokens(stop_ids(model, tokenizer)))
    (out / "Modelfile").write_text(modelfile(name, tokenizer, chat, ends), encoding="utf-8")
    written = time.perf_counter() - started
    result = parity(model, tokenizer, out, name, held, chat)
    result |= {"bounds": BOUNDS[quantize], "write_seconds": round(written, 2)}
    result["check_seconds"] = round(time.perf_counter() - started - written, 2)
    missed = [
        f"{what} {result[what]['agreement']:.4f} < {bound}"
        for what, bound in BOUNDS[quantize].items()
        if result[what]["agreement"] < bound
    ]
    if missed or result["tokenizer"]["agreement"] < 1.0:
        raise TunelabError(_parity_message(run_path, quantize, result, missed))
    write_manifest(
        out, run_path, "gguf", quantize, [name, "Modelfile"], result, file_bytes=(out / name).stat().st_size,
        load={"transformers": f'AutoModelForCausalLM.from_pretrained(folder, gguf_file="{name}")',
              "llama.cpp": f"llama-cli -m {name} -cnv", "ollama": "ollama create my-model -f Modelfile"},
    )  # fmt: skip
    return out


# ------------------------------------------------------------------ what can be exported


def check_architecture(model_dir: Path) -> dict:
    """The model's config.json, or a TunelabError where it is not an architecture this writer knows."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    architectures = config.get("architectures") or [config.get("model_type")]
    if architectures[0] not in ARCHITECTURES:
        raise TunelabError(
            f"{model_dir / 'config.json'}: a {architectures[0]} model; the GGUF export writes llama-architecture "
            f"models ({', '.join(ARCHITECTURES)}: SmolLM2, Llama, TinyLlama, ...). Export this run as hf "
            "(--format hf) and convert it with llama.cpp's convert_hf_to_gguf.py."
        )
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    kind = rope.get("rope_type", rope.get("type", "default"))
    for bad, what in (
        (kind != "default", f"rope scaling '{kind}'"),
        (config.get("attention_bias"), "attention biases"),
        (config.get("mlp_bias"), "MLP biases"),
    ):
        if bad:
            raise TunelabError(
                f"{model_dir / 'config.json'}: the model has {what}, which this GGUF writer does not write (it writes "
                "plain llama: default rope, no biases). Export it as hf and convert it with llama.cpp's "
                "convert_hf_to_gguf.py."
            )
    return config


def _chat(run_path: Path) -> bool:
    """The run answers as an assistant (sft, preference) rather than continuing text (lm): the registry says."""
    from tunelab.registry import TASKS

    info = json.loads((run_path / "run.json").read_text(encoding="utf-8"))
    return "chat" in getattr(TASKS.get(info.get("task")), "endpoints", ())


def held_out(run_path: Path, check_data: Optional[Path]) -> list[tuple]:
    """Up to PROMPTS (prompt, answer) pairs: --check-data's, or the run's test split (its family's `held_out` hook)."""
    from tunelab.config import load_run_config
    from tunelab.registry import TASKS, load_object

    cfg = load_run_config(run_path / "config.yaml")
    family = TASKS[cfg.task]
    if family.held_out is None:
        raise TunelabError(f"{run_path}: a {cfg.task} run has no held-out prompts to check a GGUF export on.")
    try:
        pairs = load_object(family.held_out)(cfg, check_data)
    except TunelabError as e:
        if check_data:
            raise
        raise TunelabError(
            f"{e} (reading the run's held-out data to check the export.) Pass the held-out prompts yourself: "
            "--check-data FILE (the run's data format)."
        ) from None
    if not pairs:
        raise TunelabError(
            f"{check_data or run_path}: no held-out prompts with answers to check the export on"
            + ("" if check_data else " (the run has no test split)")
            + ". Pass some: --check-data FILE (in the run's data format, e.g. chats in JSONL for sft)."
        )
    return pairs[:PROMPTS]


# ------------------------------------------------------------------ writing


def write_gguf(model, tokenizer, path: Path, quantize: str, title: str = "model") -> Path:
    """One GGUF file: the llama hyper-parameters, the tokenizer and chat template, the tensors in llama.cpp's layout."""
    import gguf

    config = model.config
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name(title)
    heads, kv_heads, hidden = config.num_attention_heads, config.num_key_value_heads, config.hidden_size
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(hidden)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(head_dim)
    if head_dim != hidden // heads:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_rope_freq_base(float((config.rope_parameters or {}).get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type({"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[quantize])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    add_tokenizer(writer, tokenizer, config.vocab_size)
    for name, array, kind in tensors(model, quantize):
        writer.add_tensor(name, array, raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def permute(weight: np.ndarray, heads: int) -> np.ndarray:
    """q_proj / k_proj rows from the Hugging Face rotary layout (each head's first half of dimensions rotates with its
    second half) to llama.cpp's (dimension pairs 2i, 2i+1 rotate together): convert_hf_to_gguf.py's permute.
    transformers' GGUF reader applies the inverse."""
    rows = weight.shape[0]
    return weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def tensors(model, quantize: str):
    """(GGUF name, array, GGML type) for every tensor, in llama.cpp's layout and the requested type."""
    import gguf
    from gguf.quants import quantize as quantize_array

    config = model.config
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    kinds = gguf.GGMLQuantizationType
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight" and config.tie_word_embeddings:
            continue  # tied: llama.cpp uses token_embd.weight as the output head when output.weight is absent
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise TunelabError(f"the model's tensor {hf_name} has no llama.cpp name: not a plain llama model.")
        array = tensor.detach().to(torch.float32).numpy()
        if name.endswith("attn_q.weight"):
            array = permute(array, config.num_attention_heads)
        elif name.endswith("attn_k.weight"):
            array = permute(array, config.num_key_value_heads)
        if array.ndim == 1:
            yield name, array, kinds.F32
        elif quantize == "q8_0" and array.shape[-1] % 32 == 0:
            yield name, quantize_array(array, kinds.Q8_0), kinds.Q8_0
        else:
            yield name, array.astype(np.float16), kinds.F16


def pre_tokenizer_name(backend: dict) -> str:
    """llama.cpp's name (tokenizer.ggml.pre) for the way the tokenizer splits text before BPE."""
    pre = backend.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    kinds = [s.get("type") for s in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt-2"  # llama.cpp's name (llama-vocab.cpp); "gpt2" is the tokenizer model's, and it refuses it here
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits") and steps[1].get("use_regex", True):
        return "smollm"
    if kinds == ["Split", "ByteLevel"] and steps[0].get("pattern", {}).get("Regex") == _LLAMA3_SPLIT:
        return "llama-bpe"
    raise TunelabError(
        f"the run's tokenizer splits text with {json.dumps(pre)[:200]}, a pre-tokenizer this GGUF writer does not "
        "name for llama.cpp (it knows GPT-2's byte-level split, SmolLM's and Llama 3's). Export as hf and convert "
        "with llama.cpp's convert_hf_to_gguf.py."
    )


def add_tokenizer(writer, tokenizer, vocab_size: int) -> None:
    """tokenizer.ggml.*: byte-level BPE as llama.cpp reads it, and the chat template."""
    import gguf

    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    if backend["model"]["type"] != "BPE" or (backend.get("decoder") or {}).get("type") != "ByteLevel":
        raise TunelabError(
            f"the run's tokenizer is {backend['model']['type']} with a {(backend.get('decoder') or {}).get('type')} "
            "decoder; the GGUF writer writes byte-level BPE tokenizers (GPT-2 style: SmolLM2, Llama 3). Export as hf "
            "and convert with llama.cpp's convert_hf_to_gguf.py."
        )
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder  # id -> AddedToken
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:  # the embedding matrix is larger than the vocabulary: never produced, never read
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        else:
            tokens.append(by_id[i])
            types.append(
                gguf.TokenType.NORMAL
                if i not in added
                else (gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
            )
    merges = [m if isinstance(m, str) else " ".join(m) for m in backend["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre_tokenizer_name(backend))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for token_id, add in (
        (tokenizer.bos_token_id, writer.add_bos_token_id),
        (tokenizer.eos_token_id, writer.add_eos_token_id),
        (tokenizer.unk_token_id, writer.add_unk_token_id),
        (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
            writer.add_pad_token_id,
        ),
    ):
        if token_id is not None:
            add(token_id)
    ids = tokenizer("a")["input_ids"]  # what the tokenizer adds around a text on its own
    writer.add_add_bos_token(tokenizer.bos_token_id is not None and ids[0] == tokenizer.bos_token_id)
    writer.add_add_eos_token(tokenizer.eos_token_id is not None and ids[-1] == tokenizer.eos_token_id)
    template = _template(tokenizer)
    if template:
        writer.add_chat_template(template)
        turn = end_of_turn(tokenizer)  # llama.cpp stops at EOS and at EOT: the turn's end where it is not EOS
        if turn and turn[0] != tokenizer.eos_token:
            writer.add_eot_token_id(tokenizer.convert_tokens_to_ids(turn[0]))


# ------------------------------------------------------------------ parity


def parity(model, tokenizer, folder: Path, name: str, held: list[tuple], chat: bool) -> dict:
    """The file read back with plain transformers vs the run's model: tokenizer, greedy tokens, teacher-forced top-1."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    file_tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    file_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
    ours = [encode(tokenizer, prompt, answer, chat) for prompt, answer in held]
    texts_same = sum(mine == encode(file_tokenizer, p, a, chat) for mine, (p, a) in zip(ours, held))
    forced_same = forced_total = 0
    worst = 0.0
    for prompt_ids, answer_ids in ours:
        ids = torch.tensor([prompt_ids + answer_ids])
        with torch.inference_mode():
            ref = model(ids).logits[0, len(prompt_ids) - 1 : -1]
            got = file_model(ids).logits[0, len(prompt_ids) - 1 : -1]
        forced_same += int((ref.argmax(-1) == got.argmax(-1)).sum())
        forced_total += len(answer_ids)
        worst = max(worst, float((ref - got).abs().max()))
    stops = stop_ids(model, tokenizer)
    prompts = [prompt_ids for prompt_ids, _ in ours]
    (mine, scores), (theirs, _) = _greedy(model, prompts, stops), _greedy(file_model, prompts, stops)
    differ = []
    for row, (a, b) in enumerate(zip(mine, theirs)):
        if a != b:
            at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            step = scores[at][row] if at < len(scores) else None
            margin = float(step[a[at]] - step[b[at]]) if step is not None and at < min(len(a), len(b)) else None
            differ.append({"prompt": row, "at": at, "margin": None if margin is None else round(margin, 5)})
    # a flip where the run's own top two tokens are nearer than the rounding moves logits elsewhere is a tie, not a
    # fault: counted apart, and within the greedy bound (teacher-forced agreement still bounds everything)
    ties = [d for d in differ if d["margin"] is not None and d["margin"] <= worst]
    n, template_same = len(held), _template(file_tokenizer) == _template(tokenizer)
    return {
        "prompts": n,
        "tokenizer": {"agreement": texts_same / n, "same": texts_same, "chat_template": template_same},
        "greedy": {"agreement": (n - len(differ) + len(ties)) / n, "same_prompts": n - len(differ),
                   "near_ties": len(ties), "tokens_each": GREEDY_TOKENS, "differ": differ},
        "teacher_forced": {"agreement": forced_same / max(forced_total, 1), "same": forced_same,
                           "positions": forced_total, "max_abs_logit_difference": round(worst, 5)},
    }  # fmt: skip


def encode(tokenizer, prompt, answer: str, chat: bool) -> tuple[list[int], list[int]]:
    """(prompt ids, answer ids): a chat prompt rendered with the generation prompt, the answer as the assistant's turn
    (its end-of-turn marker included); a text prompt with the tokenizer's specials. At most the last PROMPT_TOKENS of
    the prompt and the first ANSWER_TOKENS of the answer."""
    if chat:
        prompt_text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        full_text = tokenizer.apply_chat_template(prompt + [{"role": "assistant", "content": answer}], tokenize=False)
        prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
        full_ids = tokenizer(full_text, add_special_tokens=False)["input_ids"]
    else:
        prompt_ids = tokenizer(prompt)["input_ids"]
        full_ids = tokenizer(prompt + answer)["input_ids"]
    same = next((i for i, (x, y) in enumerate(zip(prompt_ids, full_ids)) if x != y), len(prompt_ids))
    prompt_ids = full_ids[:same] if same < len(prompt_ids) else prompt_ids  # a merge across the boundary: cut before
    return prompt_ids[-PROMPT_TOKENS:], full_ids[len(prompt_ids) :][:ANSWER_TOKENS]


def _greedy(model, prompts: list[list[int]], stops: list[int]) -> tuple[list[list[int]], tuple]:
    """Each prompt's first GREEDY_TOKENS greedy tokens (through the first stop token), all prompts in one left-padded
    batch, and the logits of each step (the same batch for both models: like is compared with like)."""
    width = max(map(len, prompts))
    pad = stops[0] if stops else 0
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=GREEDY_TOKENS, do_sample=False, temperature=None,
            top_p=None, top_k=None, eos_token_id=stops, pad_token_id=pad, output_scores=True,
            return_dict_in_generate=True,
        )  # fmt: skip
    rows = []
    for row in out.sequences[:, width:].tolist():
        end = next((i + 1 for i, t in enumerate(row) if t in stops), len(row))
        rows.append(row[:end])
    return rows, out.scores


def _template(tokenizer) -> Optional[str]:
    template = tokenizer.chat_template
    return template.get("default") if isinstance(template, dict) else template


def _parity_message(run_path: Path, quantize: str, result: dict, missed: list[str]) -> str:
    tok, greedy, forced = result["tokenizer"], result["greedy"], result["teacher_forced"]
    if tok["agreement"] < 1.0:
        differ = result["prompts"] - tok["same"]
        missed.insert(0, f"the file's tokenizer encodes {differ} of {result['prompts']} held-out prompts differently "
                         "(transformers reads the pre-tokenizer of a few tokenizers only)")  # fmt: skip
    return (
        f"{run_path}: the GGUF export ({quantize}) read back with transformers does not match the run's model on "
        f"{result['prompts']} held-out prompts: {'; '.join(missed)} (greedy: {greedy['same_prompts']} of "
        f"{result['prompts']} prompts the same, {greedy['near_ties']} more differing at a tie; teacher-forced top-1: "
        f"{forced['same']} of {forced['positions']}; largest logit difference {forced['max_abs_logit_difference']}). "
        f"Nothing was written. {'Try --quantize f16, or' if quantize != 'f16' else 'A faithful file:'} export as hf."
    )
