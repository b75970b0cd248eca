"""The sequence family for `tunelab doctor`: its files read as training reads them (bad rows recorded), the run's
splits, and lengths in the model's tokens (text and text pair together, special tokens included)."""

from __future__ import annotations

import numpy as np

from tunelab.doctor.family import FamilyData
from tunelab.tasks.classify.data import read_files, read_records


def _read(cfg, problems: list) -> dict:
    files = read_files(cfg, problems)
    for records in files.values():
        for r in records or []:
            r["counted"] = r["label"] if cfg.task == "multilabel" else [] if cfg.task == "regression" else [r["label"]]
    return files


def _lengths(records: list[dict], tokenizer, cfg) -> np.ndarray:
    if not records:
        return np.zeros(0, dtype=np.int64)
    pairs = [r.get("text_pair") or "" for r in records] if any("text_pair" in r for r in records) else None
    ids = tokenizer([r["text"] for r in records], pairs)["input_ids"]
    return np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))


DATA = FamilyData(read=_read, splits=lambda cfg, files: read_records(cfg, files=files), lengths=_lengths,
                  long="truncates")  # fmt: skip
