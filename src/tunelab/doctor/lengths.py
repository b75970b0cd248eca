"""Lengths in the model's own tokens (special tokens included, as training counts them): percentiles, a histogram,
and the share of examples that data.max_length truncates."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tunelab.doctor.checks import Finding


def token_lengths(records: list[dict], tokenizer) -> np.ndarray:
    if not records:
        return np.zeros(0, dtype=np.int64)
    pairs = [r.get("text_pair") or "" for r in records] if any("text_pair" in r for r in records) else None
    ids = tokenizer([r["text"] for r in records], pairs)["input_ids"]
    return np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))


def length_findings(lengths: np.ndarray, max_length: int, records: list[dict]) -> list[Finding]:
    if not len(lengths):
        return []
    p50, p90, p99 = (int(np.percentile(lengths, q)) for q in (50, 90, 99))
    over = np.flatnonzero(lengths > max_length)
    share = len(over) / len(lengths)
    data = {"n": len(lengths), "p50": p50, "p90": p90, "p99": p99, "max": int(lengths.max()),
            "max_length": max_length, "truncated": len(over), "truncated_share": share}  # fmt: skip
    out = [Finding("lengths", "info", f"training texts are {p50} tokens at the median, {p90} at p90, {p99} at p99, "
                   f"{data['max']} at most; data.max_length {max_length} truncates {len(over)} ({share:.1%}).",
                   data=data)]  # fmt: skip
    if share > 0.05:
        rows = [{"file": records[i].get("source"), "line": records[i].get("line"), "tokens": int(lengths[i])}
                for i in over]  # fmt: skip
        out.append(Finding("truncation", "warning", f"{share:.0%} of the training texts are longer than "
                           f"data.max_length {max_length} tokens and lose their end.", rows, data))  # fmt: skip
    return out


def plot_lengths(lengths: np.ndarray, max_length: int, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.hist(lengths, bins=min(60, max(10, int(lengths.max()) // 4 or 10)), color="#4c72b0")
    ax.axvline(max_length, color="#c44e52", linestyle="--", label=f"data.max_length {max_length}")
    ax.set_xlabel("tokens per training example")
    ax.set_ylabel("examples")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
