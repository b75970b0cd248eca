"""Raw text for tasks `lm` and `mlm`: documents from files or folders, split by document, tokenised as a stream.

    .txt / .md               one document per file
    .jsonl .json .csv .tsv .parquet    one document per row, in the column data.text_field

Folders are walked in sorted order and read one file at a time. Each document goes to train, validation or
test by a seeded hash of its text (stable, needs no pass over the whole corpus, and duplicates land in the
same split). The training stream stops once it holds train.max_tokens tokens; held-out documents are still
collected from the rest.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

from tunelab.config import Config
from tunelab.data import IGNORE
from tunelab.data.builtin import load_builtin
from tunelab.data.readers import FORMATS, read_table, read_utf8
from tunelab.data.splits import Splits
from tunelab.errors import TunelabError

PLAIN = {".txt", ".md"}


@dataclass
class TextSplits:
    train: list[dict]  # samples: input_ids, labels
    validation: list[dict]
    test: list[dict]
    documents: dict = field(default_factory=lambda: {"train": 0, "validation": 0, "test": 0})
    tokens: dict = field(default_factory=lambda: {"train": 0, "validation": 0, "test": 0})
    dropped_duplicates: int = 0
    budget_reached: bool = False
    fingerprint: str = ""


def iter_documents(cfg: Config, path: Optional[Path] = None, problems: Optional[list] = None) -> Iterator[dict]:
    """{"text", "source", "line"} for each document of `path` (a file or folder), or of the built-in corpus. With
    `problems` (tunelab doctor), undecodable bytes and malformed rows are recorded there instead of raising."""
    if path is None:
        records, _ = load_builtin(cfg.data.dataset, "text")
        yield from records
        return
    path = Path(path)
    if not path.exists():
        raise TunelabError(
            f"{path}: not found. Give a text file, a folder of them, or a .jsonl/.csv/.parquet file with a "
            f"'{cfg.data.text_field}' column."
        )
    files = (
        sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in PLAIN | set(FORMATS))
        if path.is_dir()
        else [path]
    )
    if not files:
        raise TunelabError(f"{path}: no .txt, .md, .jsonl, .json, .csv or .parquet files in this folder.")
    for f in files:
        yield from _read_file(f, cfg.data.text_field, problems)


def _read_file(path: Path, text_field: str, problems: Optional[list] = None) -> Iterator[dict]:
    if path.suffix.lower() in PLAIN:
        if problems is not None:
            text = read_utf8(path, problems) if path.stat().st_size else ""
        else:
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise TunelabError(f"{path}: not UTF-8 text. Re-save it as UTF-8.") from None
        if text.strip():
            yield {"text": text, "source": str(path), "line": None}
        return
    table = read_table(path, problems)
    if text_field not in table.columns:
        raise TunelabError(
            f"{path}: no field '{text_field}' (it has {', '.join(map(repr, table.columns))}). Set data.text_field."
        )
    for row in table.rows:
        value = row.values.get(text_field)
        if isinstance(value, str) and value.strip():
            yield {"text": value, "source": str(path), "line": row.line}


def split_of(text: str, seed: int, validation_fraction: float, test_fraction: float) -> str:
    u = int.from_bytes(hashlib.sha256(f"{seed}\0{text}".encode()).digest()[:8], "big") / 2**64
    return "test" if u < test_fraction else "validation" if u < test_fraction + validation_fraction else "train"


def read_text_splits(cfg: Config, encode) -> TextSplits:
    """Stream the documents, split them, and turn each into samples with `encode(text) -> list of samples`."""
    d = cfg.data
    budget = cfg.train.max_tokens
    out = TextSplits([], [], [])
    seen: set[bytes] = set()
    h = hashlib.sha256()
    given = {"validation": d.validation, "test": d.test}
    fractions = (0.0 if d.validation else d.validation_fraction, 0.0 if d.test else d.test_fraction)
    for doc in iter_documents(cfg, d.train):
        key = hashlib.sha256(doc["text"].encode()).digest()[:16]
        if d.dedupe and key in seen:
            out.dropped_duplicates += 1
            continue
        seen.add(key)
        part = split_of(doc["text"], cfg.data.split_seed, *fractions)
        if part == "train" and (out.budget_reached or (d.limit and out.documents["train"] >= d.limit)):
            continue  # keep walking only for held-out documents
        _add(out, part, encode(doc["text"]), h)
        out.budget_reached = out.budget_reached or bool(budget and out.tokens["train"] >= budget)
    for part, path in given.items():
        if path:
            for doc in iter_documents(cfg, path):
                _add(out, part, encode(doc["text"]), h)
    if not out.train:
        raise TunelabError(
            f"{d.train or 'built-in:' + str(d.dataset)}: no training text (empty files, or every document held out)."
        )
    out.fingerprint = h.hexdigest()[:16]
    return out


def document_splits(cfg: Config, files: dict) -> Splits:
    """The documents' splits as read_text_splits assigns them (deduplicated, a seeded hash of each text, given files
    in their split's place, data.limit documents of train), without tokenising; the token budget (train.max_tokens),
    which needs the tokens, is left out (tunelab doctor)."""
    d = cfg.data
    fractions = (0.0 if d.validation else d.validation_fraction, 0.0 if d.test else d.test_fraction)
    parts: dict[str, list[dict]] = {"train": [], "validation": [], "test": []}
    seen, dropped = set(), 0
    for doc in files["train"]:
        if d.dedupe and doc["text"] in seen:
            dropped += 1
            continue
        seen.add(doc["text"])
        part = split_of(doc["text"], d.split_seed, *fractions)
        if part != "train" or not d.limit or len(parts["train"]) < d.limit:
            parts[part].append(doc)
    for part in ("validation", "test"):
        if files.get(part) is not None:
            parts[part] = files[part]
    return Splits(parts["train"], parts["validation"], parts["test"], dropped)


def _add(out: TextSplits, part: str, samples: list[dict], h) -> None:
    getattr(out, part).extend(samples)
    out.documents[part] += 1
    for s in samples:
        out.tokens[part] += len(s["input_ids"])
        h.update(part.encode() + bytes(str(s["input_ids"]), "ascii"))


# ------------------------------------------------------------------ encoders: text -> samples


def causal_pieces(tokenizer, max_length: int):
    """Document -> [BOS if the tokenizer adds one] tokens EOS, cut into pieces of at most max_length tokens."""
    eos = tokenizer.eos_token_id

    def encode(text: str) -> list[dict]:
        ids = tokenizer(text)["input_ids"]
        if eos is not None and (not ids or ids[-1] != eos):
            ids = ids + [eos]
        pieces = [ids[i : i + max_length] for i in range(0, len(ids), max_length)]
        return [{"input_ids": p, "labels": [IGNORE] + p[1:]} for p in pieces if len(p) > 1]

    return encode


def mlm_pieces(tokenizer, max_length: int, probability: float, seed: int):
    """Document -> [CLS] piece [SEP] rows of at most max_length tokens, with masks drawn once from (seed, text):
    each non-special token is chosen with `probability`; chosen tokens become [MASK] (80%), a random token (10%)
    or stay (10%), and only they carry labels."""
    import numpy as np

    if tokenizer.mask_token_id is None:
        raise TunelabError(
            f"{type(tokenizer).__name__}: the tokenizer has no mask token, so it is not a masked-LM (BERT-style) "
            "model. Use task lm for GPT-style models."
        )
    first = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    last = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    body = max_length - 2

    def encode(text: str) -> list[dict]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        rng = np.random.default_rng([seed, int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")])
        samples = []
        for start in range(0, len(ids), body):
            piece = [first, *ids[start : start + body], last]
            chosen = [i for i in range(1, len(piece) - 1) if rng.random() < probability]
            inputs, labels = list(piece), [IGNORE] * len(piece)
            for i in chosen:
                labels[i] = piece[i]
                roll = rng.random()
                inputs[i] = (
                    tokenizer.mask_token_id
                    if roll < 0.8
                    else int(rng.integers(len(tokenizer)))
                    if roll < 0.9
                    else piece[i]
                )
            if chosen:
                samples.append({"input_ids": inputs, "labels": labels})
        return samples

    return encode
