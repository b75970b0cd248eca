"""Read a table of examples from CSV, TSV, JSONL, JSON or Parquet, keeping each row's line number.

Every problem is a TunelabError that names the file and the line, and says what to do. Given a `problems` list (what
`tunelab doctor` does), a bad row is recorded there ({"check", "file", "line", "message"}) and skipped instead, so
one pass reports every problem of a file; a file that cannot be read at all still raises.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from tunelab.errors import TunelabError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".txt": "tsv", ".jsonl": "jsonl", ".json": "json", ".parquet": "parquet"}


@dataclass
class Row:
    line: int  # 1-based line (CSV/TSV/JSONL) or row number (JSON/Parquet) in the source file
    values: dict[str, Any]


@dataclass
class Table:
    path: Path
    rows: list[Row]
    columns: list[str]

    def require(self, *columns: str) -> None:
        for c in columns:
            if c not in self.columns:
                raise TunelabError(
                    f"{self.path}: no column '{c}'. The file has: "
                    f"{', '.join(map(repr, self.columns)) or 'no columns'}. "
                    "Name the right one in the recipe (data.text_column / data.label_column) or with --text-column / "
                    "--label-column."
                )


def read_table(path: str | Path, problems: Optional[list] = None) -> Table:
    path = Path(path)
    if not path.exists():
        raise TunelabError(f"{path}: file not found. Check the path (relative paths start from {Path.cwd()}).")
    if path.is_dir():
        raise TunelabError(f"{path}: is a folder; give a data file (.csv, .tsv, .jsonl, .json, .parquet).")
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise TunelabError(f"{path}: unknown format '{path.suffix}'. Use .csv, .tsv, .jsonl, .json or .parquet.")
    if kind == "parquet":
        return _read_parquet(path)
    text = read_utf8(path, problems)
    if kind in ("csv", "tsv"):
        return _read_delimited(path, text, "," if kind == "csv" else "\t", problems)
    if kind == "jsonl":
        return _read_jsonl(path, text, problems)
    return _read_json(path, text)


def report(problems: Optional[list], check: str, path: Path, line: int, message: str) -> None:
    """Raise the problem, or record it where a `problems` list collects every one (tunelab doctor)."""
    if problems is None:
        raise TunelabError(f"{path}, line {line}: {message}")
    problems.append({"check": check, "file": str(path), "line": line, "message": message})


def record(problems: list, error: TunelabError, check: str) -> None:
    """A TunelabError ("FILE, line N: what") recorded as a problem of that file and line."""
    where, _, message = str(error).partition(": ")
    path, _, line = where.partition(", line ")
    problems.append({"check": check, "file": path, "line": int(line) if line.isdigit() else None, "message": message})


def read_utf8(path: Path, problems: Optional[list] = None) -> str:
    """The file's text; undecodable bytes raise (or, with `problems`, are recorded per line and read as U+FFFD)."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        if problems is None:
            line = data[: e.start].count(b"\n") + 1
            raise TunelabError(
                f"{path}, line {line}: bytes that are not UTF-8 ({data[e.start : e.start + 4]!r}). "
                f"Re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)."
            ) from None
        for i, raw in enumerate(data.split(b"\n"), start=1):  # every line with such bytes, each replaced by U+FFFD
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as bad:
                what = raw[bad.start : bad.start + 4]
                report(problems, "undecodable", path, i, f"bytes that are not UTF-8 ({what!r}); read as U+FFFD. "
                       " Re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`).")  # fmt: skip
        text = data.decode("utf-8-sig", errors="replace")
    if not text.strip():
        raise TunelabError(f"{path}: the file is empty. Give a file with a header and at least a few examples.")
    return text


def _read_delimited(path: Path, text: str, delimiter: str, problems: Optional[list] = None) -> Table:
    lines = text.splitlines(keepends=True)
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        header = next(reader)
    except csv.Error as e:
        raise TunelabError(f"{path}, line 1: cannot read the header ({e}).") from None
    header = [h.strip() for h in header]
    rows = []
    try:
        for values in reader:
            line = reader.line_num
            if not values or all(not v.strip() for v in values):
                continue
            if len(values) != len(header):
                report(problems, "malformed_row", path, line, f"{len(values)} fields but the header has {len(header)} "
                       f"({', '.join(header)}). Quote fields that contain '{delimiter}' or fix the line.")  # fmt: skip
                continue
            rows.append(Row(line, dict(zip(header, values))))
    except csv.Error as e:  # the reader cannot go on past this line
        report(problems, "malformed_row", path, reader.line_num, f"malformed {('CSV', 'TSV')[delimiter == chr(9)]} "
               f"({e}); nothing after it could be read. Fix the quoting on that line.")  # fmt: skip
    return Table(path, rows, header)


def _read_jsonl(path: Path, text: str, problems: Optional[list] = None) -> Table:
    rows, columns = [], {}
    for i, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            report(problems, "malformed_row", path, i, f"not valid JSON ({e.msg} at column {e.colno}). Each line "
                   "must be one JSON object.")  # fmt: skip
            continue
        if not isinstance(obj, dict):
            report(problems, "malformed_row", path, i, f'expected a JSON object like {{"text": ..., "label": ...}}, '
                   f"got {type(obj).__name__}.")  # fmt: skip
            continue
        columns.update(dict.fromkeys(obj))
        rows.append(Row(i, obj))
    return Table(path, rows, list(columns))


def _read_json(path: Path, text: str) -> Table:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise TunelabError(
            f"{path}, line {e.lineno}: not valid JSON ({e.msg}). Fix the file, or use JSONL (one object per line)."
        ) from None
    if isinstance(obj, dict) and len(obj) == 1 and isinstance(next(iter(obj.values())), list):
        obj = next(iter(obj.values()))  # {"data": [...]}
    if not isinstance(obj, list) or not all(isinstance(o, dict) for o in obj):
        raise TunelabError(f'{path}: expected a JSON list of objects like [{{"text": ..., "label": ...}}, ...].')
    columns = {}
    for o in obj:
        columns.update(dict.fromkeys(o))
    return Table(path, [Row(i + 1, o) for i, o in enumerate(obj)], list(columns))


def _read_parquet(path: Path) -> Table:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises many types for corrupt files
        raise TunelabError(
            f"{path}: cannot read as Parquet ({e}). Check that the file is a complete Parquet file."
        ) from None
    records = table.to_pylist()
    return Table(path, [Row(i + 1, r) for i, r in enumerate(records)], table.column_names)
