"""Lengths in the model's own tokens (as the family counts them, tasks/<family>/doctor.py): percentiles, a histogram,
and the share of examples longer than data.max_length (truncated, or split into windows); the length that keeps a
share of the texts whole (`keeping_length`: the doctor's recommendation, and the training report's, which
`truncation_note` words from run.json)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tunelab.doctor.checks import Finding

TRUNCATED = 0.05  # above this share of truncated training texts the doctor warns and the training report advises


def keeping_length(lengths, share: float) -> int:
    """The data.max_length that keeps `share` of these texts whole: their `share` percentile, rounded up to a multiple
    of 8 (kernels like it, and the value reads as a setting, not a measurement)."""
    if not len(lengths):
        return 8
    return int(-(-int(np.percentile(lengths, share * 100)) // 8) * 8)


def truncation_note(data: dict, max_length: int) -> str | None:
    """The training report's line when more than TRUNCATED of the training texts were truncated: how many, and the
    data.max_length that keeps 95% of them whole (run.json's data.length_keeping_95); None otherwise or for a run
    that did not record them."""
    n, cut, keep = data.get("train") or 0, data.get("truncated_train") or 0, data.get("length_keeping_95")
    if not n or cut / n <= TRUNCATED:
        return None
    most = "most training texts" if cut / n > 0.5 else "many training texts"
    fix = (f"data.max_length: {keep} keeps 95% of them whole (as `tunelab doctor` computes it; longer is slower)"
           if keep and keep > max_length else "check the text column, or raise data.max_length")  # fmt: skip
    return (f"{most} were truncated: {cut:,} of {n:,} ({cut / n:.0%}) are longer than data.max_length {max_length} "
            f"tokens and lost their end; {fix}")  # fmt: skip


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
    if share > TRUNCATED and long == "truncates":  # (windows lose no word, only some context)
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
