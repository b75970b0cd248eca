"""Generation-based evaluation: exact match and contains-answer on normalised text, plus a table of samples."""

from __future__ import annotations

import re
import string

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")


def normalize(text: str) -> str:
    """Lower case, no punctuation, single spaces (the usual QA normalisation)."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def generation_metrics(predictions: list[str], references: list[str]) -> dict:
    pairs = [(normalize(p), normalize(r)) for p, r in zip(predictions, references)]
    n = len(pairs)
    return {
        "exact_match": sum(p == r for p, r in pairs) / n if n else 0.0,
        "contains_answer": sum(bool(r) and r in p for p, r in pairs) / n if n else 0.0,
        "generated": n,
    }


def sample_table(
    prompts: list[str], references: list[str], predictions: list[str], limit: int = 10, width: int = 100
) -> str:
    """A Markdown table of the first `limit` samples: prompt, reference, prediction."""

    def cell(s: str) -> str:
        s = " ".join(s.split()).replace("|", "\\|")
        return s if len(s) <= width else s[: width - 1] + "…"

    rows = [f"| {cell(p)} | {cell(r)} | {cell(g)} |" for p, r, g in list(zip(prompts, references, predictions))[:limit]]
    return "\n".join(["| prompt | reference | prediction |", "|---|---|---|", *rows])
