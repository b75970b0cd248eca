"""Prediction files at any size: the texts of one column read a row at a time, and prediction records appended to a
.jsonl or .csv output that an interrupted run can continue — both in constant memory.

Input: CSV and TSV (the csv module over the file's lines), JSONL (line by line), Parquet (pyarrow batches, row groups
before the first wanted row skipped), .txt (one text per line) — each streamed; JSON is one document and is loaded
whole. Rows are what `data/readers.py` reads: a blank line (CSV, TSV, JSONL, .txt) is no row. A row is numbered from
0 in file order, the number every prediction record carries as "row". A row whose text is empty, blank or missing is
still a row (its record is an error record); a file that cannot be read on (broken quoting, a line with the wrong
number of fields, invalid JSON, bytes that are not UTF-8) raises a TunelabError naming the file and the line.

Output: `Records` writes records (dicts) to .jsonl, one JSON object a line, or to .csv with a header fixed by the
first write (nested values as JSON, as `predict_io.write_predictions` writes them); `complete_records` reads an
existing output back, cuts off a torn last record (a run killed while writing) and says how many complete records
it holds, checking that they are numbered one after another from the first expected row.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tunelab.errors import TunelabError, where

INPUTS = (".csv", ".tsv", ".jsonl", ".json", ".parquet", ".txt")
OUTPUTS = (".jsonl", ".csv")  # what streams and resumes; .json (one document) and .tsv are written whole


@dataclass
class TextRow:
    row: int  # 0-based among the file's rows: a prediction record's "row"
    line: int  # 1-based line in the file (JSON, Parquet: 1-based row)
    text: Optional[str]  # None: empty, blank or missing — an error record, not a prediction


class TextFile:
    """The texts of one column of a prediction file: `rows(start, stop)` streams rows start <= row < stop, `count()`
    counts them (one pass; Parquet: its metadata). Opening checks the file and that the column exists."""

    def __init__(self, path: str | Path, column: str):
        self.path, self.column = Path(path), column
        self._whole: Optional[list[dict]] = None  # a JSON file's records, read once
        if not self.path.exists():
            raise TunelabError(f"{self.path}: file not found. Check the path (relative paths start from {Path.cwd()}).")
        if self.path.is_dir():
            raise TunelabError(f"{self.path}: is a folder; give a file of texts ({', '.join(INPUTS)}).")
        self.kind = self.path.suffix.lower()
        if self.kind not in INPUTS:
            raise TunelabError(f"{self.path}: unknown format '{self.path.suffix}'. Use {', '.join(INPUTS)}.")
        if self.kind != ".txt":  # a .txt file is the column
            self._require(self._columns())

    # ------------------------------------------------------------------ rows

    def rows(self, start: int = 0, stop: Optional[int] = None) -> Iterator[TextRow]:
        if self.kind == ".parquet":
            yield from self._parquet(start, stop)
            return
        if self.kind == ".json":
            source = ((i + 1, obj.get(self.column)) for i, obj in enumerate(self._json()))
        elif self.kind == ".jsonl":
            source = self._jsonl(start)
        elif self.kind == ".txt":
            source = ((line, text.rstrip("\r\n")) for line, text in _lines(self.path) if text.strip())
        else:
            source = self._delimited()
        for row, (line, value) in enumerate(source):
            if stop is not None and row >= stop:
                return
            if row >= start:
                yield TextRow(row, line, _text(value))

    def count(self) -> int:
        if self.kind == ".parquet":
            return self._parquet_file().metadata.num_rows
        if self.kind in (".jsonl", ".txt"):  # a row is a non-blank line: no need to decode or parse it
            with open(self.path, "rb") as f:
                return sum(1 for raw in f if raw.strip())
        return sum(1 for _ in (self._json() if self.kind == ".json" else self._delimited()))

    def missing(self, row: TextRow) -> str:
        """What an error record says about a row without text."""
        return f"no text in column '{self.column}' ({where(self.path, row.line)})"

    # ------------------------------------------------------------------ formats

    def _columns(self) -> list[str]:
        if self.kind == ".parquet":
            return self._parquet_file().schema_arrow.names
        if self.kind == ".json":
            return list(next(iter(self._json()), {}))
        if self.kind == ".jsonl":
            for line, raw in _lines(self.path):
                if raw.strip():
                    return list(self._object(line, raw))
            return []
        with open(self.path, encoding="utf-8-sig", newline="") as f:
            return self._header(csv.reader(f, delimiter=self._delimiter, strict=True))

    def _require(self, columns: list[str]) -> None:
        if self.column not in columns:
            raise TunelabError(
                f"{self.path}: no column '{self.column}'"
                f"{' in its first row' if self.kind in ('.json', '.jsonl') else ''}. It has: "
                f"{', '.join(map(repr, columns)) or 'no columns'}. Name the column of the texts with --text-column."
            )

    @property
    def _delimiter(self) -> str:
        return "\t" if self.kind == ".tsv" else ","

    def _header(self, reader) -> list[str]:
        try:
            return [h.strip() for h in next(reader)]
        except StopIteration:
            raise TunelabError(f"{self.path}: the file is empty. Give a header line, then one text a line.") from None
        except csv.Error as e:
            raise TunelabError(f"{self.path}, line 1: cannot read the header ({e}).") from None
        except UnicodeDecodeError:
            self._undecodable()

    def _delimited(self) -> Iterator[tuple[int, Optional[str]]]:
        """(line, the column's value) of each row; the csv module reads the file itself (fast), and where bytes are not
        UTF-8 the file is read again a line at a time to name the line."""
        what = "TSV" if self.kind == ".tsv" else "CSV"
        with open(self.path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter=self._delimiter, strict=True)
            header = self._header(reader)
            column = header.index(self.column)
            width = len(header)
            try:
                for values in reader:
                    if len(values) == width and values[column].strip():  # the common case, checked first
                        yield reader.line_num, values[column]
                    elif any(v.strip() for v in values):  # a blank line is no row
                        if len(values) != width:
                            raise TunelabError(
                                f"{self.path}, line {reader.line_num}: {len(values)} fields but the header has "
                                f"{width} ({', '.join(header)}). Quote fields that contain "
                                f"'{chr(9) if what == 'TSV' else ','}' or fix the line."
                            )
                        yield reader.line_num, values[column]
            except csv.Error as e:  # the reader cannot go on past this line
                raise TunelabError(
                    f"{self.path}, line {reader.line_num}: malformed {what} ({e}). Fix the quoting on that line."
                ) from None
            except UnicodeDecodeError:
                self._undecodable()

    def _undecodable(self):
        for _ in _lines(self.path):  # raises at the first line that is not UTF-8
            pass
        raise AssertionError("unreachable: a decoding error that a second reading does not find")

    def _jsonl(self, start: int) -> Iterator[tuple[int, object]]:
        row = -1
        for line, raw in _lines(self.path):
            if not raw.strip():
                continue
            row += 1
            if row < start:  # before the wanted rows: counted, not parsed
                yield line, None
            else:
                yield line, self._object(line, raw).get(self.column)

    def _object(self, line: int, raw: str) -> dict:
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            raise TunelabError(
                f"{self.path}, line {line}: not valid JSON ({e.msg} at column {e.colno}). Each line must be one JSON "
                "object."
            ) from None
        if not isinstance(obj, dict):
            raise TunelabError(
                f'{self.path}, line {line}: expected a JSON object like {{"{self.column}": ...}}, got '
                f"{type(obj).__name__}."
            )
        return obj

    def _json(self) -> list[dict]:
        from tunelab.data.readers import read_table

        if self._whole is None:  # one JSON document: read whole, once
            self._whole = [r.values for r in read_table(self.path).rows]
        return self._whole

    def _parquet_file(self):
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(self.path)
        except Exception as e:  # pyarrow raises many types for corrupt files
            raise TunelabError(
                f"{self.path}: cannot read as Parquet ({e}). Check that the file is a complete Parquet file."
            ) from None

    def _parquet(self, start: int, stop: Optional[int]) -> Iterator[TextRow]:
        pf = self._parquet_file()
        first, groups, at = None, [], 0  # the row groups holding a wanted row; the row the first of them starts at
        for g in range(pf.metadata.num_row_groups):
            n = pf.metadata.row_group(g).num_rows
            if at + n > start and (stop is None or at < stop):
                first = at if first is None else first
                groups.append(g)
            at += n
        if not groups:
            return
        row = first
        for batch in pf.iter_batches(batch_size=4096, row_groups=groups, columns=[self.column]):
            for value in batch.column(0).to_pylist():
                if stop is not None and row >= stop:
                    return
                if row >= start:
                    yield TextRow(row, row + 1, _text(value))
                row += 1


def _text(value) -> Optional[str]:
    """A cell as the text to predict; None where it is empty, blank or null."""
    return None if value is None or not str(value).strip() else str(value)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line, text with its line end) of a UTF-8 file, read a line at a time; a BOM is dropped."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise TunelabError(
                    f"{path}, line {number}: bytes that are not UTF-8 ({raw[e.start : e.start + 4]!r}). Re-save the "
                    "file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)."
                ) from None
            yield number, text


# ---------------------------------------------------------------------- output


def output_kind(path: Path) -> Optional[str]:
    """The suffix of an output that streams (.jsonl, .csv), else None: written whole by `predict_io`."""
    suffix = Path(path).suffix.lower()
    return suffix if suffix in OUTPUTS else None


class Records:
    """Append records to a .jsonl or .csv output, each `write` flushed to disk; `columns` (CSV) is the header, written
    when the file is new, or the header the file already has (resume)."""

    def __init__(self, path: Path, columns: Optional[list[str]] = None, append: bool = False):
        self.path, self.columns = Path(path), columns
        self.kind = output_kind(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "a" if append else "w", encoding="utf-8", newline="")
        self.header = append and self.columns is not None  # an appended CSV has its header already

    def write(self, records: list[dict]) -> None:
        if self.kind == ".jsonl":
            self.file.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        else:
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, self.columns, extrasaction="ignore")
            if not self.header:
                writer.writeheader()
                self.header = True
            writer.writerows(
                {k: json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v for k, v in r.items()}
                for r in records
            )
            self.file.write(buffer.getvalue())
        self.file.flush()

    def close(self) -> None:
        self.file.close()


@dataclass
class Existing:
    records: int  # complete records, numbered first_row, first_row + 1, ...
    columns: Optional[list[str]]  # a CSV's header (None: no complete header, or JSONL)


def complete_records(path: Path, first_row: int) -> Existing:
    """Count the complete records of an interrupted output and cut the file after the last one (a record torn by a
    kill: no line end, an open quote, too few fields). Each record's "row" must be the next number from `first_row`;
    otherwise the file is the output of another input or shard, and nothing is cut."""
    path = Path(path)
    if not path.exists():
        return Existing(0, None)
    kind, good, n, columns = output_kind(path), 0, 0, None  # good: the byte offset after the last complete record
    with open(path, "rb") as f:
        offset = [0, True]  # bytes read so far; whether the last line read ended with a line end

        def lines():
            for raw in f:
                offset[0] += len(raw)
                offset[1] = raw.endswith(b"\n")
                yield raw.decode("utf-8", errors="replace")

        if kind == ".jsonl":
            for number, text in enumerate(lines(), start=1):
                try:
                    row = json.loads(text)["row"] if offset[1] else None
                except (json.JSONDecodeError, TypeError, KeyError):
                    row = None
                if row is None and not offset[1]:
                    break  # the torn last line
                _check_row(path, number, row, first_row + n)
                n, good = n + 1, offset[0]
        else:
            reader = csv.reader(lines(), strict=True)
            try:
                header = next(reader)
                if offset[1]:
                    columns, good = header, offset[0]
                    for values in reader:
                        if not offset[1] or len(values) != len(columns):
                            break
                        _check_row(path, reader.line_num, values[0], first_row + n)
                        n, good = n + 1, offset[0]
            except (StopIteration, csv.Error):  # an empty file, or an open quote at its end: a torn record
                pass
    if good < path.stat().st_size:
        with open(path, "r+b") as f:
            f.truncate(good)
    return Existing(n, columns)


def _check_row(path: Path, line: int, row, expected: int) -> None:
    if str(row) != str(expected):
        raise TunelabError(
            f"{path}, line {line}: row {row} where row {expected} comes next, so this is not the output of this input "
            "(and --shard). Resume with the --input, --text-column and --shard of the interrupted run, or write to a "
            "new --output."
        )
