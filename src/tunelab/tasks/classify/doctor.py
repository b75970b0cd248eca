"""The sequence family for `tunelab doctor`: its files read as training reads them (bad rows recorded), the run's
splits, and lengths in the model's tokens (text and text pair together, special tokens included)."""

from __future__ import annotations

from tunelab.doctor.family import FamilyData
from tunelab.tasks.classify.data import read_files, read_records, token_lengths


def _read(cfg, problems: list) -> dict:
    files = read_files(cfg, problems)
    for records in files.values():
        for r in records or []:
            r["counted"] = r["label"] if cfg.task == "multilabel" else [] if cfg.task == "regression" else [r["label"]]
    return files


DATA = FamilyData(read=_read, splits=lambda cfg, files: read_records(cfg, files=files),
                  lengths=lambda records, tokenizer, cfg: token_lengths(records, tokenizer),
                  long="truncates", augments=True)  # fmt: skip
