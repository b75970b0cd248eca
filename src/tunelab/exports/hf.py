"""format "hf": a standalone copy of the run's plain Hugging Face model directory (merged, safetensors)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional


def write(run_path: Path, out: Path, quantize: Optional[str] = None, check_data: Optional[Path] = None) -> Path:
    """Copy run_path/model into `out` (an empty folder the caller made): the merged model, exactly as trained."""
    shutil.copytree(Path(run_path) / "model", out, dirs_exist_ok=True)
    return out
