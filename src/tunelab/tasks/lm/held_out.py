"""Held-out prompts and reference answers of sft and lm runs, read as the run split them (or from a given file):
what an export of the run is checked on (the registry's `held_out` hook; exports/gguf.py). And an mlm run's held-out
documents, for its ONNX export's parity (exports/parity.py), as (text, "") pairs: nothing to answer."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from tunelab.config import Config
from tunelab.tasks.lm.chat import chat_splits, prompt_and_reference, read_chats
from tunelab.tasks.lm.text import document_splits, iter_documents, read_text_splits


def chats(cfg: Config, file: Optional[Path] = None) -> list[tuple[list[dict], str]]:
    """(the conversation before the last assistant reply, that reply) for each chat of the run's test split, or of
    `file` (any chat layout sft reads)."""
    records = read_chats(file, "auto") if file else chat_splits(cfg).test
    return [prompt_and_reference(r["messages"]) for r in records]


def documents(cfg: Config, file: Optional[Path] = None) -> list[tuple[str, str]]:
    """(its first half, its second half), cut between words, for each document of the run's test split, or of `file`
    (a text file, a folder of them, or a table with data.text_field). A document of one word has no answer: skipped."""
    if file:
        docs = list(iter_documents(cfg, file))
    else:
        d = cfg.data
        read = lambda path: list(iter_documents(cfg, path))  # noqa: E731
        files = {"train": read(d.train), "validation": None, "test": read(d.test) if d.test else None}
        docs = document_splits(cfg, files).test
    pairs = []
    for doc in docs:
        words = doc["text"].split(" ")
        if len(words) > 1:
            half = len(words) // 2
            pairs.append((" ".join(words[:half]), " " + " ".join(words[half:])))
    return pairs


def texts(cfg: Config, file: Optional[Path] = None) -> list[tuple[str, str]]:
    """(document, "") for each test document of an mlm run as its story split them (its validation documents where it
    holds none out for testing), or for each text of `file` (its data.text_column)."""
    if file:
        from tunelab.data.predict_io import read_texts

        return [(text, "") for text in read_texts(Path(file), cfg.data.text_column)]
    splits = read_text_splits(cfg, lambda text: [{"input_ids": (), "text": text}])
    return [(s["text"], "") for s in (splits.test or splits.validation)]
