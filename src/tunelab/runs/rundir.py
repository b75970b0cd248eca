"""The run directory: the contract that load, predict, eval, export and serving read.

run.json          schema version, task, status, versions, base model + hash, data fingerprint, labels, preprocessing
config.yaml       the resolved recipe: the fields of its task and method (older runs: every field)
metrics.jsonl     one record per logging step (train loss, lr, grad norm, tokens/s, validation metrics)
metrics.json      final metrics (validation at the best step, test)
curves.png        train vs validation loss and metric
model/            plain merged Hugging Face directory (safetensors, config with id2label, tokenizer)
adapter/          LoRA runs: the PEFT adapter (with the task head)
checkpoints/      latest + best, for resume
README.md         model card

Every run is also listed in the run index (runs/index.py), which follows run.json.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from tunelab.errors import TunelabError
from tunelab.runs import index
from tunelab.runs.checkpoint import write_atomic

SCHEMA_VERSION = 1
# run.json `kind`: what made the run (a training run, a cross-validation, an ensemble, a search and its trials);
# `parent` names the run directory it belongs to (a trial's study, a fold's cross-validation), or null
KINDS = ("train", "cv", "ensemble", "study", "trial")
# run.json `status`, the same words for every kind (a run without `kind` was written before it existed: a "train")
STATUSES = ("running", "completed", "stopped_early", "interrupted", "failed", "pruned")


class RunDir:
    def __init__(self, path: Path, final: Optional[Path] = None, created: bool = False, lineage: Optional[dict] = None):
        self.path = Path(path)
        self.final = Path(final) if final else self.path  # where the run lands when it succeeds
        self.created = created  # this run made the directory (so a run that fails before its run.json removes it)
        # run.json's kind and parent: a search's trial is {"kind": "trial", "parent": "runs/tune-x"}
        self.lineage = {"kind": "train", "parent": None} | (lineage or {})
        self._indexed = 0.0  # when this process last told the run index of the run's progress

    # ---------------------------------------------------------------- creating

    @classmethod
    def create(cls, output_dir: Optional[Path], task: str, overwrite: bool = False) -> "RunDir":
        """A fresh run directory. With overwrite, the new run is staged beside the old one and swapped in only
        when it completes, so a run that fails never destroys an earlier run's outputs."""
        if output_dir is None:
            output_dir = index.runs_dir() / f"{task}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
        output_dir = Path(output_dir)
        if output_dir.exists() and any(output_dir.iterdir()):
            if not overwrite:
                raise TunelabError(
                    f"{output_dir}: the output directory already holds a run. Choose another --output-dir, "
                    f"continue it with --resume {output_dir}, or replace it with --overwrite."
                )
            staging = output_dir.with_name(output_dir.name + ".new")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            return cls(staging, final=output_dir, created=True)
        existed = output_dir.exists()
        output_dir.mkdir(parents=True, exist_ok=True)
        return cls(output_dir, created=not existed)

    @classmethod
    def open(cls, path: Path) -> "RunDir":
        path = Path(path)
        if not (path / "run.json").exists() and not (path / "config.yaml").exists():
            raise TunelabError(
                f"{path}: not a tunelab run directory (no run.json). Give the folder that `tunelab train` wrote."
            )
        info = cls(path).info
        return cls(path, lineage={k: info[k] for k in ("kind", "parent") if k in info})

    def discard_if_empty(self) -> None:
        """A run that failed before writing its first run.json leaves nothing behind.

        Only a directory the run made itself is removed."""
        if self.created and not (self.path / "run.json").exists():
            shutil.rmtree(self.path, ignore_errors=True)

    def finish(self) -> "RunDir":
        """Move a staged run over the old one (overwrite)."""
        if self.final != self.path:
            trash = self.final.with_name(self.final.name + ".old")
            shutil.rmtree(trash, ignore_errors=True)
            os.replace(self.final, trash)
            os.replace(self.path, self.final)
            shutil.rmtree(trash, ignore_errors=True)
            index.moved(self.path, self.final)
            self.path = self.final
        return self

    # ---------------------------------------------------------------- files

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def model_hash(self) -> str:
        """sha256 (16 hex digits) of every file of model/, names and bytes, in name order: what an ensemble or a
        cache keyed by this run checks it against."""
        import hashlib

        h = hashlib.sha256()
        root = self.path / "model"
        for f in sorted(p for p in root.rglob("*") if p.is_file()):
            h.update(str(f.relative_to(root)).encode() + b"\0")
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 22), b""):
                    h.update(chunk)
        return h.hexdigest()[:16]

    def read_json(self, name: str) -> dict:
        p = self.path / name
        return json.loads(p.read_text(encoding="utf-8")) if p.exists() else {}

    def write_json(self, name: str, obj: dict) -> None:
        write_atomic(self.path / name, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")

    def update_info(self, **fields) -> dict:
        """Merge fields into run.json."""
        if fields.get("status", "running") not in STATUSES or fields.get("kind", "train") not in KINDS:
            raise ValueError(
                f"run.json: status {fields.get('status')!r} / kind {fields.get('kind')!r} outside {STATUSES} / {KINDS}"
            )
        info = self.read_json("run.json") or {"schema_version": SCHEMA_VERSION, "created": now()}
        info.update(fields)
        info["updated"] = now()
        self.write_json("run.json", info)
        index.record(self.path, info)  # the run index follows run.json (runs/index.py; never fails the run)
        return info

    @property
    def info(self) -> dict:
        return self.read_json("run.json")

    def log(self, record: dict) -> None:
        with open(self.path / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record, default=float) + "\n")
        if time.monotonic() - self._indexed >= 1.0:  # the index hears of progress at most once a second
            self._indexed = time.monotonic()
            index.logged(self.path, record.get("step"), record.get("loss"))

    def history(self) -> list[dict]:
        p = self.path / "metrics.jsonl"
        if not p.exists():
            return []
        return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]

    def truncate_history(self, step: int) -> None:
        """On resume: forget records logged after the checkpoint we restart from."""
        kept = [r for r in self.history() if r.get("step", 0) <= step]
        write_atomic(self.path / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in kept))


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
