"""Lengths in the model's own tokens (as the family counts them, tasks/<family>/doctor.py): percentiles, a histogram,
and the share of examples longer than data.max_length (truncated, or split into windows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tunelab.doctor.checks import Finding


def length_findings(lengths: np.ndarray, max_length: int, records: list, long: str = "truncates") -> list[Finding]:
    """`long`: what max_length does to a longer example, "truncates" (its end is lost) or "splits into windows"."""
    if not len(lengths):
        return []
    p50, p90, p99 = (int(np.percentile(lengths, q)) for q in (50, 90, 99))
    over = np.flatnonzero(lengths > max_length)
    share = len(over) / len(lengths)
    data = {"n": len(lengths), "p50": p50, "p90": p90, "p99": p99, "max": int(lengths.max()),
            "max_length": max_length, "truncated": len(over), "truncated_share": share}  # fmt: skip
    out = [Finding("lengths", "info", f"training texts are {p50} tokens at the median, {p90} at p90, {p99} at p99, "
                   f"{data['max']} at most; data.max_length {max_length} {long}: {len(over)} ({share:.1%}).",
                   data=data)]  # fmt: skip
    if share > 0.05 and long == "truncates":  # (windows lose no word, only some context)
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
