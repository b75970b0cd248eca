"""GGUF checkpoints: de-quantised once with transformers' `gguf_file=` support, then cached as a plain
safetensors directory (tokenizer and chat template included) under the tunelab cache, so later loads take
well under a second instead of ~12 s of de-quantising."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tunelab.errors import TunelabError


def cache_root() -> Path:
    from tunelab.data.cache import cache_dir

    return cache_dir() / "models"


def dequantized(location: str, gguf_file: str, content_hash: str) -> Path:
    """A plain HF directory holding the de-quantised weights of `location/gguf_file` (created on first use)."""
    out = cache_root() / f"{Path(gguf_file).stem}-{content_hash}"
    if (out / "config.json").exists():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    try:
        model = AutoModelForCausalLM.from_pretrained(
            location, gguf_file=gguf_file, quantization_config=GgufConfig(dequantize=True)
        )
        tokenizer = AutoTokenizer.from_pretrained(location, gguf_file=gguf_file)
    except (OSError, ValueError, KeyError) as e:
        raise TunelabError(
            f"{location}/{gguf_file}: cannot read this GGUF file ({str(e).splitlines()[0]}). "
            f"transformers reads GGUF for llama, mistral, qwen2, gpt2 and a few other architectures."
        ) from None
    if getattr(model, "hf_quantizer", None) is not None:  # flagged as quantized, which blocks saving and training
        model.hf_quantizer.remove_quantization_config(model)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    try:
        os.replace(tmp, out)
    except OSError:  # another process cached it first
        shutil.rmtree(tmp, ignore_errors=True)
    return out
