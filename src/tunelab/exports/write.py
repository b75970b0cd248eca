"""export(): a run's model written in a format, checked first against what its task can take (registry `exports`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Optional, Union

from tunelab.errors import TunelabError

# each format's module (a `write(run_path, out, quantize, check_data) -> Path` function) and the quantisations it takes
FORMATS = {"hf": "tunelab.exports.hf:write", "onnx": "tunelab.exports.onnx:write", "gguf": "tunelab.exports.gguf:write"}
QUANTIZE = {"hf": (), "onnx": ("int8",), "gguf": ("f16", "q8_0")}


def export(
    run_dir: Union[str, Path],
    out: Union[str, Path],
    format: str = "hf",
    quantize: Optional[str] = None,
    check_data: Optional[Union[str, Path]] = None,
) -> Path:
    """Write run_dir's model to `out` (a new or empty folder) in `format`; returns `out`."""
    from tunelab.registry import TASKS, load_object

    run_path, out = Path(run_dir), Path(out)
    info_file = run_path / "run.json"
    info = json.loads(info_file.read_text(encoding="utf-8")) if info_file.exists() else {}
    if info.get("kind") == "ensemble":
        raise TunelabError(
            f"{run_path}: an ensemble, not one model: its members' predictions are combined at prediction time, so "
            "there is no single model to export. Export a member (run.json lists them), or serve the "
            f"ensemble as it is: tunelab serve {run_path}."
        )
    if not (run_path / "model").exists():
        raise TunelabError(f"{run_path}: has no model/ folder (did the run finish?). Finish or resume the run first.")
    task = info.get("task")
    family = TASKS.get(task)
    allowed = ("hf", *(family.exports if family else ()))
    if format not in FORMATS:
        raise TunelabError(f"unknown export format '{format}'. Formats: {', '.join(FORMATS)}.")
    if format not in allowed:
        raise TunelabError(
            f"{run_path}: a {task} run exports as {' or '.join(allowed)}, not {format}. Tasks that export as "
            f"{format}: {', '.join(name for name, f in TASKS.items() if format in f.exports)}."
        )
    if quantize is not None and quantize not in QUANTIZE[format]:
        takes = ", ".join(QUANTIZE[format]) or "none"
        raise TunelabError(f"--quantize {quantize}: format {format} takes {takes}.")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TunelabError(f"{out}: exists and is not empty. Choose an empty or new folder for the export.")
    tmp = out.parent / f".tmp-export-{out.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        load_object(FORMATS[format])(run_path, tmp, quantize, Path(check_data) if check_data else None)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    return out
