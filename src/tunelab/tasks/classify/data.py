"""Sequence-level data (classification, multilabel, regression): read, check, split, encode labels, tokenise.

Texts are tokenised once and cached as Arrow (via `datasets`) keyed by data + tokenizer + max length, never
in the training loop.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from tunelab.config import Config
from tunelab.data.builtin import load_builtin
from tunelab.data.cache import cache_dir
from tunelab.data.fingerprint import data_fingerprint
from tunelab.data.padding import attention_mask, pad
from tunelab.data.readers import read_table, report
from tunelab.data.splits import Splits, draw, make_splits, strata
from tunelab.errors import TunelabError
from tunelab.registry import TASKS


@dataclass
class LabelSpace:
    """What the head predicts. `names` is empty for regression."""

    task: str
    names: list[str]

    @property
    def num_outputs(self) -> int:
        return 1 if self.task == "regression" else len(self.names)

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.names)) if self.names else {0: "score"}

    @property
    def label2id(self) -> dict[str, int]:
        return {v: k for k, v in self.id2label.items()}

    @classmethod
    def from_run(cls, task: str, id2label: dict) -> "LabelSpace":
        """The label space stored in a run's run.json (keys are strings there)."""
        return cls(task, [] if task == "regression" else [id2label[str(i)] for i in range(len(id2label))])

    def encode(self, label) -> Any:
        if self.task == "regression":
            return float(label)
        if self.task == "multilabel":
            hot = [0.0] * len(self.names)
            for name in label:
                hot[self.label2id[name]] = 1.0
            return hot
        return self.label2id[label]


# ------------------------------------------------------------------ reading


def read_records(cfg: Config, problems: Optional[list] = None, files: Optional[dict] = None) -> Splits:
    """Train/validation/test records with normalised labels; the built-in dataset when no file is given. `files`:
    read_files' result when the caller has it already (tunelab doctor reads the files once)."""
    train, validation, test = (files or read_files(cfg, problems)).values()
    stratify = lambda records: strata(records, TASKS[cfg.task].stratify)  # noqa: E731
    splits = make_splits(train, validation, test, cfg.data, _text_key, stratify)
    n = cfg.data.few_shot
    if n:  # N to train on, N more to validate on, from train + validation; the test split as it is
        pool = splits.train + splits.validation
        splits.train, rest = draw(pool, n, cfg.data.split_seed, stratify(pool))
        splits.validation, _ = draw(rest, n, cfg.data.split_seed + 1, stratify(rest))
    return splits


def read_files(cfg: Config, problems: Optional[list] = None) -> dict[str, Optional[list[dict]]]:
    """The records of each file as given (the built-in dataset for train when the recipe names no file; None for a
    split no file gives), before deduplication and splitting. With `problems`, bad rows are recorded and skipped."""
    d = cfg.data
    if d.train is None:
        records, source = load_builtin(d.dataset)
        for r in records:
            r["source"] = source
        train = records
    else:
        train = read_labelled_file(d.train, cfg, problems)
    return {"train": train,
            "validation": read_labelled_file(d.validation, cfg, problems) if d.validation else None,
            "test": read_labelled_file(d.test, cfg, problems) if d.test else None}  # fmt: skip


def _text_key(r: dict):
    return (r["text"], r.get("text_pair"))


def read_labelled_file(path: Path, cfg: Config, problems: Optional[list] = None) -> list[dict]:
    d = cfg.data
    table = read_table(path, problems)
    table.require(d.text_column, d.label_column)
    if d.text_pair_column:
        table.require(d.text_pair_column)
    records = []
    for row in table.rows:
        text = row.values.get(d.text_column)
        if text is None or not str(text).strip():
            blank = " (whitespace only)" if text is not None and str(text) else ""
            report(problems, "empty_text", path, row.line, f"empty text in column '{d.text_column}'{blank}. Remove "
                   "the line or fill in the text.")  # fmt: skip
            continue
        try:
            label = _parse_label(row.values.get(d.label_column), cfg, path, row.line)
        except TunelabError as e:
            if problems is None:
                raise
            check = "empty_label" if "empty label" in str(e) else "bad_label"
            problems.append({"check": check, "file": str(path), "line": row.line, "message": str(e).split(": ", 1)[1]})
            continue
        rec = {"text": str(text), "label": label, "line": row.line, "source": str(path)}
        if d.text_pair_column:
            rec["text_pair"] = str(row.values.get(d.text_pair_column) or "")
        records.append(rec)
    if not records and problems is None:
        raise TunelabError(f"{path}: no examples (only a header?). Add labelled rows.")
    return records


def _parse_label(value, cfg: Config, path, line):
    col = cfg.data.label_column
    if value is None or (isinstance(value, str) and not value.strip() and cfg.task != "multilabel"):
        raise TunelabError(
            f"{path}, line {line}: empty label in column '{col}'. Every example needs a label; remove the line or "
            "fill it in."
        )
    if cfg.task == "regression":
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise TunelabError(
                f"{path}, line {line}: label {value!r} in column '{col}' is not a finite number, which task "
                "'regression' needs."
            )
        return number
    if cfg.task == "multilabel":
        if isinstance(value, list):
            return sorted({str(v) for v in value})
        return sorted({p.strip() for p in str(value).split(cfg.data.label_separator) if p.strip()})
    if isinstance(value, (list, dict)):
        raise TunelabError(
            f"{path}, line {line}: label {value!r} is a {type(value).__name__}; task 'classification' takes one label "
            "per example (use task: multilabel for several)."
        )
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


# ------------------------------------------------------------------ labels


def build_label_space(splits: Splits, task: str) -> LabelSpace:
    if task == "regression":
        return LabelSpace(task, [])
    if task == "multilabel":
        names = sorted({n for r in splits.train for n in r["label"]}, key=_natural)
    else:
        names = sorted({r["label"] for r in splits.train}, key=_natural)
    if len(names) < 2:
        raise TunelabError(
            f"{_source(splits.train)}: the training data has {len(names)} class{'es' if len(names) != 1 else ''} "
            f"({', '.join(names) or 'none'}). "
            f"A classifier needs at least two; check data.label_column and the file."
        )
    space = LabelSpace(task, names)
    check_known(splits.validation, space, "validation")
    check_known(splits.test, space, "test")
    return LabelSpace(task, names)


def check_known(records: list[dict], space: LabelSpace, part: str) -> None:
    """Every label of validation/test/eval data must be one the model was trained on."""
    if space.task == "regression":
        return
    known = set(space.names)
    for r in records:
        labels = r["label"] if space.task == "multilabel" else [r["label"]]
        unseen = [x for x in labels if x not in known]
        if unseen:
            raise TunelabError(
                f"{r.get('source', part)}, line {r.get('line', '?')}: label {unseen[0]!r} in the {part} data never "
                "occurs in training "
                f"(training labels: {', '.join(space.names)}). Add training examples of it or remove it from the "
                f"{part} data."
            )


def _natural(s: str):
    return (0, int(s), "") if s.lstrip("-").isdigit() else (1, 0, s)


def _source(records):
    return records[0].get("source", "the data") if records else "the data"


# ------------------------------------------------------------------ tokenising


def fingerprint(splits: Splits) -> str:
    """The data fingerprint of labelled texts: text, pair and label of every example."""
    parts = ((name, getattr(splits, name)) for name in ("train", "validation", "test"))
    return data_fingerprint(parts, lambda r: [r["text"], r.get("text_pair"), r["label"]])


def tokenize(records: list[dict], labels: LabelSpace, tokenizer, max_length: int, cache_key: Optional[str] = None):
    """A `datasets.Dataset` with input_ids, length, labels — cached on disk under the tunelab cache when keyed."""
    import datasets

    datasets.disable_progress_bars()
    cache = cache_dir() / "tokenized" / cache_key if cache_key else None
    if cache is not None and cache.exists():
        try:
            return datasets.load_from_disk(str(cache))
        except Exception:  # a half-written cache from a killed run: rebuild it
            pass
    if not records:  # e.g. validation_fraction: 0 and no validation file
        return datasets.Dataset.from_dict({"input_ids": [], "length": [], "labels": []})
    texts = [r["text"] for r in records]
    pairs = [r.get("text_pair") for r in records] if any("text_pair" in r for r in records) else None
    enc = tokenizer(texts, pairs, truncation=True, max_length=max_length) if texts else {"input_ids": []}
    ds = datasets.Dataset.from_dict(
        {
            "input_ids": enc["input_ids"],
            **({"token_type_ids": enc["token_type_ids"]} if pairs is not None and "token_type_ids" in enc else {}),
            "length": [len(x) for x in enc["input_ids"]],
            "labels": [labels.encode(r["label"]) for r in records],
        }
    )
    if cache is None:
        return ds
    tmp = cache.with_name(cache.name + f".tmp{os.getpid()}")
    ds.save_to_disk(str(tmp))
    try:
        os.replace(tmp, cache)
    except OSError:  # another process cached it first
        shutil.rmtree(tmp, ignore_errors=True)
    return datasets.load_from_disk(str(cache))


def token_lengths(records: list[dict], tokenizer) -> np.ndarray:
    """Tokens per example as training counts them: text and text pair together, special tokens included."""
    if not records:
        return np.zeros(0, dtype=np.int64)
    pairs = [r.get("text_pair") or "" for r in records] if any("text_pair" in r for r in records) else None
    ids = tokenizer([r["text"] for r in records], pairs)["input_ids"]
    return np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))


def collate(rows: list[dict], pad_id: int, task: str) -> dict[str, torch.Tensor]:
    """Pad a micro-batch to its longest example."""
    inputs = [r["input_ids"] for r in rows]
    batch = {"input_ids": pad(inputs, pad_id), "attention_mask": attention_mask(inputs)}
    if "token_type_ids" in rows[0]:
        batch["token_type_ids"] = pad([r["token_type_ids"] for r in rows], 0, batch["input_ids"].shape[1])
    dtype = torch.long if task == "classification" else torch.float
    batch["labels"] = torch.tensor([r["labels"] for r in rows], dtype=dtype)
    return batch
