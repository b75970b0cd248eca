"""Batch prediction files: texts in (any table format, or .txt one per line), predictions out (.jsonl, .json, .csv)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tunelab.data.readers import read_table
from tunelab.errors import TunelabError


def read_texts(path: Path, column: str) -> list[str]:
    path = Path(path)
    if path.suffix.lower() == ".txt":
        if not path.exists():
            raise TunelabError(f"{path}: file not found.")
        try:
            return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except UnicodeDecodeError:
            raise TunelabError(f"{path}: not UTF-8 text. Re-save it as UTF-8.") from None
    table = read_table(path)
    table.require(column)
    texts = []
    for row in table.rows:
        value = row.values.get(column)
        if value is None or not str(value).strip():
            raise TunelabError(
                f"{path}, line {row.line}: empty text in column '{column}'. Remove the line or fill it in."
            )
        texts.append(str(value))
    return texts


def prediction_rows(texts: list[str], predictions: list) -> list[dict]:
    """What `tunelab predict` writes per text (and `POST /v1/classify` / `/v1/entities` answer): the text, then the
    predictor's fields (classification family), or its spans under "entities" (ner)."""
    return [{"text": t, **(p if isinstance(p, dict) else {"entities": p})} for t, p in zip(texts, predictions)]


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    """Rows as a CSV with these columns (other keys ignored), and a text_pair column after text when any row has one:
    errors.csv and label_issues.csv, which spreadsheets and pandas open as they are."""
    if "text" in columns and any("text_pair" in r for r in rows):
        columns = [*columns[: columns.index("text") + 1], "text_pair", *columns[columns.index("text") + 1 :]]
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_predictions(rows: list[dict], path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    elif suffix == ".json":
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=2), encoding="utf-8")
    elif suffix in (".csv", ".tsv"):
        flat = [
            {k: (json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v) for k, v in r.items()}
            for r in rows
        ]
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(
                f, fieldnames=list(flat[0]) if flat else ["text"], delimiter="," if suffix == ".csv" else "\t"
            )
            writer.writeheader()
            writer.writerows(flat)
    else:
        raise TunelabError(f"{path}: unknown output format '{suffix}'. Use .jsonl, .json, .csv or .tsv.")
