"""The ner family for `tunelab doctor`: each file's sentences read as training reads them (bad rows and sentences
recorded), the run's splits, and lengths in word pieces. A sentence is compared by its words (text: the words joined
by spaces), labelled by its tag sequence, and counted by its entity types; data.max_length splits a longer sentence
into overlapping windows (no word is lost)."""

from __future__ import annotations

import numpy as np

from tunelab.data.tags import spans
from tunelab.doctor.family import FamilyData
from tunelab.tasks.ner.data import read_files, read_sentences


def _read(cfg, problems: list) -> dict:
    files = read_files(cfg, problems)
    for records in files.values():
        for r in records or []:
            r["text"], r["label"] = " ".join(r["tokens"]), " ".join(r["tags"])
            r["counted"] = [kind for kind, _, _ in spans(r["tags"])]
    return files


def _lengths(records: list[dict], tokenizer, cfg) -> np.ndarray:
    if not records:
        return np.zeros(0, dtype=np.int64)
    ids = tokenizer([r["tokens"] for r in records], is_split_into_words=True)["input_ids"]
    return np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))


DATA = FamilyData(read=_read, splits=lambda cfg, files: read_sentences(cfg, files=files), lengths=_lengths,
                  long="splits into windows")  # fmt: skip
