"""Write the run's plain Hugging Face model (merged, safetensors) and, for LoRA, the adapter beside it."""

from __future__ import annotations

import shutil
from pathlib import Path

from tunelab.methods.lora import save_adapter_and_merge


def save_model(model, tokenizer, run_path: Path) -> Path:
    """model/ (always plain and merged) and adapter/ (LoRA). Consumes a PEFT model (merges it)."""
    model = save_adapter_and_merge(model, tokenizer, run_path / "adapter")
    out = run_path / "model"
    tmp = run_path / ".tmp-model"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out
