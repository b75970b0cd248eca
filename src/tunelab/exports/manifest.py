"""manifest.json: what an export holds and the parity it measured against the run's model, for people and tools."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional


def write_manifest(
    out: Path, run_path: Path, format: str, quantize: Optional[str], files: list[str], parity: dict, **extra
) -> dict:
    """out/manifest.json: {format, quantize, task, run, files, parity, tunelab_version, ...extra}; returns it."""
    from tunelab import __version__

    info_file = Path(run_path) / "run.json"
    info = json.loads(info_file.read_text(encoding="utf-8")) if info_file.exists() else {}
    manifest = {
        "format": format,
        "quantize": quantize,
        "task": info.get("task"),
        "run": str(Path(run_path).resolve()),
        "files": files,
        "parity": parity,
        "tunelab_version": __version__,
        **extra,
    }
    (Path(out) / "manifest.json").write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return manifest


def read_manifest(path: Path) -> Optional[dict]:
    """The manifest of an export folder, or None where `path` is not one (a run directory, a plain model)."""
    file = Path(path) / "manifest.json"
    return json.loads(file.read_text(encoding="utf-8")) if file.exists() else None
