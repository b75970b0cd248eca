"""Generation-based evaluation: exact match and contains-answer on normalised text, plus a table of samples."""

from __future__ import annotations

import re
import string
from typing import Optional

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


def base_vs_tuned(metrics: dict) -> list[tuple[str, Optional[float], Optional[float]]]:
    """The base-vs-fine-tuned rows every report shows (the model card, the CLI's report): (what, base, fine-tuned)."""
    base, generation = metrics.get("base") or {}, metrics.get("generation") or {}
    test_perplexity = metrics.get("test", {}).get("perplexity")
    rows = [
        ("test perplexity (sft: of the reference answers)", base.get("test", {}).get("perplexity"), test_perplexity)
    ]
    if generation:
        n = generation.get("generated")
        for key in ("exact_match", "contains_answer"):
            rows.append((f"{key} ({n} held-out prompts)", base.get("generation", {}).get(key), generation.get(key)))
    return rows


def sample_table(
    prompts: list[str], references: list[str], predictions: list[str], limit: int = 10, width: int = 100
) -> str:
    """A Markdown table of the first `limit` samples: prompt, reference, prediction."""

    def cell(s: str) -> str:
        s = " ".join(s.split()).replace("|", "\\|")
        return s if len(s) <= width else s[: width - 1] + "…"

    rows = [f"| {cell(p)} | {cell(r)} | {cell(g)} |" for p, r, g in list(zip(prompts, references, predictions))[:limit]]
    return "\n".join(["| prompt | reference | prediction |", "|---|---|---|", *rows])
