"""Where tunelab keeps what it derives from inputs, to reuse across runs: $TUNELAB_CACHE (default ~/.cache/tunelab),
holding tokenized datasets and de-quantised GGUF models."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("TUNELAB_CACHE", Path.home() / ".cache" / "tunelab"))
