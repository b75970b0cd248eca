"""Text-to-text data: records of a source text and a target text, read from a file or a built-in dataset, each given
its prompt (a template over the record's columns), deduplicated and split.

    {"source": "Au commencement, Dieu créa les cieux et la terre.", "target": "In the beginning, God created ..."}

The prompt template names columns: {source} is the source column whatever its name, any other {column} is read from
the record (ACLSum's {aspect}). Duplicates are dropped on (prompt, target), so one document with several targets
(a paper's three aspect summaries) keeps them all; the seeded split keeps each source text in one split. A built-in
dataset brings its own split (ACLSum's, the Bible's by book); --validation / --test files replace a split.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Optional

from tunelab.config import Config
from tunelab.data.builtin import PAIR_LANGUAGES, PAIR_PROMPTS, load_builtin
from tunelab.data.readers import read_table, record
from tunelab.data.splits import Splits, dedupe, split_groups
from tunelab.errors import TunelabError, where

# ISO 639-1 codes of common languages -> the names a prompt uses; any other value is used as written
LANGUAGES = {
    "ar": "Arabic",
    "bg": "Bulgarian",
    "ca": "Catalan",
    "cs": "Czech",
    "da": "Danish",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "es": "Spanish",
    "et": "Estonian",
    "fa": "Persian",
    "fi": "Finnish",
    "fr": "French",
    "he": "Hebrew",
    "hi": "Hindi",
    "hr": "Croatian",
    "hu": "Hungarian",
    "id": "Indonesian",
    "it": "Italian",
    "ja": "Japanese",
    "ko": "Korean",
    "la": "Latin",
    "lt": "Lithuanian",
    "lv": "Latvian",
    "nl": "Dutch",
    "no": "Norwegian",
    "pl": "Polish",
    "pt": "Portuguese",
    "ro": "Romanian",
    "ru": "Russian",
    "sk": "Slovak",
    "sl": "Slovenian",
    "sr": "Serbian",
    "sv": "Swedish",
    "sw": "Swahili",
    "th": "Thai",
    "tl": "Tagalog",
    "tr": "Turkish",
    "uk": "Ukrainian",
    "ur": "Urdu",
    "vi": "Vietnamese",
    "zh": "Chinese",
}

SUMMARIZE = "Summarize the following text.\n\n{source}"


def language(value: Optional[str]) -> Optional[str]:
    """A language code's name (fr -> French); anything else as written."""
    return None if value is None else LANGUAGES.get(value.strip().lower(), value.strip())


def template(cfg: Config) -> str:
    """The prompt template: the recipe's, else the built-in dataset's, else the task's (translation: with the source
    and target languages where they are known)."""
    d = cfg.data
    if d.prompt:
        return d.prompt
    builtin = d.train is None
    if builtin and d.dataset in PAIR_PROMPTS:
        return PAIR_PROMPTS[d.dataset]
    if cfg.task == "summarization":
        return SUMMARIZE
    src, tgt = PAIR_LANGUAGES.get(d.dataset, (None, None)) if builtin else (None, None)
    src, tgt = language(d.source_lang or src), language(d.target_lang or tgt)
    if src and tgt:
        return f"Translate the following {src} text into {tgt}.\n\n{{source}}"
    if tgt:
        return f"Translate the following text into {tgt}.\n\n{{source}}"
    return f"Translate the following {src + ' ' if src else ''}text.\n\n{{source}}"


def template_fields(text: str, origin: str = "data.prompt") -> list[str]:
    """The column names a template uses; a malformed template is an error naming it."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError as e:
        raise TunelabError(
            f"{origin}: the prompt template {text!r} is malformed ({e}). Name columns as {{source}} or {{aspect}}; "
            "write a literal brace twice ({{ or }})."
        ) from None
    bad = [n for n in names if not n.isidentifier()]
    if bad:
        raise TunelabError(
            f"{origin}: the prompt template {text!r} names {bad[0]!r}, which is not a column name. Name columns as "
            "{source} or {aspect}; write a literal brace twice ({{ or }})."
        )
    return list(dict.fromkeys(names))


def render(text: str, fields: dict) -> str:
    """The template filled with a record's fields (source plus the other columns it names)."""
    return text.format_map(fields)


# ------------------------------------------------------------------ reading


def _text(value) -> str:
    if value is None or (isinstance(value, float) and value != value):  # None or NaN (an empty CSV/Parquet cell)
        return ""
    return str(value)


def read_pairs(path: Path, cfg: Config, problems: Optional[list] = None, prompt: Optional[str] = None) -> list[dict]:
    """Records {"source", "target", "fields", "line", "file"} of a CSV/TSV/JSONL/JSON/Parquet file, checked: its
    columns exist (those the prompt template names too: the recipe's, or `prompt`), no source or target is empty.
    With `problems` (tunelab doctor) a bad row is recorded and skipped."""
    d = cfg.data
    table = read_table(path, problems)
    columns = ", ".join(map(repr, table.columns)) or "no columns"
    for column, field, flag in (
        (d.source_column, "source_column", "--source-column"),
        (d.target_column, "target_column", "--target-column"),
    ):
        if column not in table.columns:
            raise TunelabError(
                f"{path}: no column '{column}' (data.{field}). The file has: {columns}. Name the right one in the "
                f"recipe (data.{field}) or with {flag}."
            )
    used = [n for n in template_fields(prompt or template(cfg)) if n != "source"]
    missing = [n for n in used if n not in table.columns and n != d.source_column]
    if missing:
        raise TunelabError(
            f"{path}: the prompt template names the column '{missing[0]}', which the file lacks. The file has: "
            f"{columns}. Fix data.prompt, or add the column."
        )
    records = []
    for row in table.rows:
        source, target = _text(row.values.get(d.source_column)), _text(row.values.get(d.target_column))
        try:
            for value, column in ((source, d.source_column), (target, d.target_column)):
                if not value.strip():
                    raise TunelabError(
                        f"{where(path, row.line)}: empty '{column}'. Every pair needs a source and a target; fill it "
                        "in or remove the line."
                    )
        except TunelabError as e:
            if problems is None:
                raise
            record(problems, e, "empty_text")
            continue
        fields = {n: _text(row.values.get(n)) for n in used}
        records.append({"source": source, "target": target, "fields": fields, "line": row.line, "file": str(path)})
    if not records and problems is None:
        raise TunelabError(f"{path}: no pairs. Add rows with a source and a target.")
    return records


def builtin_pairs(name: str) -> list[dict]:
    """A built-in dataset's records in the same shape (their own split kept in "split")."""
    records, path = load_builtin(name, "pairs")
    keep = {"source", "target", "split", "line"}
    return [
        {
            "source": r["source"],
            "target": r["target"],
            "split": r.get("split"),
            "line": r.get("line"),
            "file": r.get("source_file", path),
            "fields": {k: str(v) for k, v in r.items() if k not in keep},
        }
        for r in records
    ]


# ------------------------------------------------------------------ splitting


def with_prompts(records: list[dict], text: str) -> list[dict]:
    """Each record with its prompt (the template over the untruncated source), for deduplication and doctor."""
    for r in records:
        try:
            r["prompt"] = render(text, {**r["fields"], "source": r["source"]})
        except KeyError as e:
            raise TunelabError(
                f"{where(r['file'], r['line'])}: the prompt template names {e}, which this record lacks. Fix "
                "data.prompt, or add the column."
            ) from None
    return records


def pair_key(r: dict) -> tuple[str, str]:
    return r["prompt"], r["target"]


def pair_files(cfg: Config, problems: Optional[list] = None) -> dict[str, Optional[list[dict]]]:
    """Each file's records as given (the built-in dataset for train when no file is named; None: no file)."""
    d, text = cfg.data, template(cfg)
    train = builtin_pairs(d.dataset) if d.train is None else read_pairs(d.train, cfg, problems)
    given = {
        name: read_pairs(path, cfg, problems) if path else None
        for name, path in (("validation", d.validation), ("test", d.test))
    }
    return {"train": with_prompts(train, text)} | {k: v and with_prompts(v, text) for k, v in given.items()}


def pair_splits(cfg: Config, files: Optional[dict] = None) -> Splits:
    """Deduplicated on (prompt, target) — train also against given validation/test files —, then split: a built-in
    dataset's own split, else seeded with each source text in one split; given files take their split's place;
    data.limit caps train (its first records: a built-in's order is made for that)."""
    d = cfg.data
    files = files or pair_files(cfg)
    records, dropped = dedupe(files["train"], key=pair_key) if d.dedupe else (files["train"], 0)
    held_out = {pair_key(r) for r in (files["validation"] or []) + (files["test"] or [])}
    if d.dedupe and held_out:
        before = len(records)
        records = [r for r in records if pair_key(r) not in held_out]
        dropped += before - len(records)
    if records and all(r.get("split") for r in records):
        own = {name: [r for r in records if r["split"] == name] for name in ("train", "validation", "test")}
        train, val, test = own["train"], own["validation"], own["test"]
    else:
        fractions = (
            0.0 if files["validation"] is not None else d.validation_fraction,
            0.0 if files["test"] is not None else d.test_fraction,
        )
        train, val, test = split_groups(records, fractions, d.split_seed, key=lambda r: r["source"])
    val = files["validation"] if files["validation"] is not None else val
    test = files["test"] if files["test"] is not None else test
    return Splits(train[: d.limit] if d.limit else train, val, test, dropped)
