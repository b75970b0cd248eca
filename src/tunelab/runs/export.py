"""Write the run's plain Hugging Face model (merged, safetensors) and, for LoRA, the adapter beside it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tunelab.errors import TunelabError
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


def export(run_path: Path, out: Path) -> Path:
    """A standalone copy of the run's plain model directory."""
    src = Path(run_path) / "model"
    info_file = Path(run_path) / "run.json"
    if info_file.exists() and json.loads(info_file.read_text(encoding="utf-8")).get("kind") == "ensemble":
        raise TunelabError(
            f"{run_path}: an ensemble, not one model: its members' predictions are combined at prediction time, so "
            "there is no single Hugging Face model to export. Export a member (run.json lists them), or serve the "
            f"ensemble as it is: tunelab serve {run_path}."
        )
    if not src.exists():
        raise TunelabError(f"{run_path}: has no model/ folder (did the run finish?). Finish or resume the run first.")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise TunelabError(f"{out}: exists and is not empty. Choose an empty or new folder for the export.")
    shutil.copytree(src, out, dirs_exist_ok=True)
    return out
