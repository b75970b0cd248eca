"""Batched generation for text-to-text runs, both model kinds: what validation, the test, `tunelab predict` and
`tunelab eval` call.

Prompts are token ids (the encoding's own, so a generation sees exactly the truncated source that training saw).

Greedy decoding of a decoder-only model — the default, and most of a run's evaluation time — goes through
models/decode.greedy (continuous batching, the prompts' common head prefilled once, skinny-input matmuls), the loop
`tunelab serve` decodes with. Measured on the Bible test split: see docs/tasks/text-to-text.md.

Beam search, no_repeat_ngram_size and encoder-decoder models use transformers' generate on batches sorted by length:
decoder-only batches left-padded (positions from the attention mask), encoder-decoder batches right-padded; each row
stops at its EOS. Either way, batched greedy output equals one-by-one generation in fp32
(tests/tasks/seq2seq/test_story.py, test_encoder_decoder.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from tunelab.data.padding import attention_mask, pad
from tunelab.models.decode import greedy, stop_ids
from tunelab.training.precision import autocast


@dataclass(frozen=True)
class Options:
    max_new_tokens: int = 128
    num_beams: int = 1
    length_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    batch_size: int = 16

    @classmethod
    def of(cls, ev) -> "Options":
        """From a recipe's eval section (or run.json's copy of it)."""
        get = ev.get if isinstance(ev, dict) else lambda k, default: getattr(ev, k, default)
        return cls(
            get("max_new_tokens", 128),
            get("num_beams", 1),
            get("length_penalty", 1.0),
            get("no_repeat_ngram_size", 0),
            get("generate_batch_size", 16),
        )


@torch.inference_mode()
def generate(
    model,
    tokenizer,
    prompts: list[list[int]],
    options: Options,
    encoder_decoder: bool,
    precision: str = "fp32",
    on_batch: Optional[Callable[[int], None]] = None,
) -> tuple[list[str], list[int]]:
    """(the outputs, their lengths in tokens, EOS excluded), in the order of `prompts`."""
    if not encoder_decoder and options.num_beams == 1 and options.no_repeat_ngram_size == 0:
        return greedy(model, tokenizer, prompts, options.max_new_tokens, options.batch_size, precision, on_batch)
    was_training = model.training  # (greedy switches dropout off and back itself)
    model.eval()
    out = batched(model, tokenizer, prompts, options, encoder_decoder, precision, on_batch)
    model.train(was_training)
    return out


@torch.inference_mode()
def batched(model, tokenizer, prompts: list[list[int]], options: Options, encoder_decoder: bool,
            precision: str = "fp32", on_batch=None) -> tuple[list[str], list[int]]:  # fmt: skip
    """transformers' generate on batches of prompts sorted by length (beam search, n-gram blocking,
    encoder-decoder models; the baseline benchmarks/generate.py measures the greedy path against)."""
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stops = stop_ids(model, tokenizer)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    texts, lengths = [""] * len(prompts), [0] * len(prompts)
    for start in range(0, len(order), options.batch_size):
        idx = order[start : start + options.batch_size]
        rows = [prompts[i] for i in idx]
        if encoder_decoder:
            ids, mask = pad(rows, pad_id), attention_mask(rows)
        else:  # left padding: flip, right-pad, flip back
            ids = pad([r[::-1] for r in rows], pad_id).flip(1)
            mask = attention_mask(rows).flip(1)
        with autocast(precision, device):
            out = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=options.max_new_tokens,
                num_beams=options.num_beams,
                length_penalty=options.length_penalty,
                no_repeat_ngram_size=options.no_repeat_ngram_size,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=pad_id,
                eos_token_id=stops,
                use_cache=True,
            )
        new = out[:, 1:] if encoder_decoder else out[:, ids.shape[1] :]  # encoder-decoder: after the start token
        for i, row in zip(idx, new.tolist()):
            end = next((k for k, t in enumerate(row) if t in stops), len(row))
            texts[i] = tokenizer.decode(row[:end], skip_special_tokens=True).strip()
            lengths[i] = end
        if on_batch:
            on_batch(len(idx))
    return texts, lengths
