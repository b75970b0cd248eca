"""PNG plots a person can look at: learning curves (over/under-fitting at a glance) and confusion matrices."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_curves(history: list[dict], metric: str, path: Path, title: str = "", higher_is_better: bool = True,
                marks: tuple = ()) -> None:  # fmt: skip
    """Left: train vs validation loss by step, with the fit diagnosis's (step, kind) marks. Right: the validation
    metric by step, its best step marked (the direction is the run's selection: eval.mode, or the metric's own)."""
    train = [(r["step"], r["loss"]) for r in history if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in history if "val_loss" in r]
    val_metric = [(r["step"], r[f"val_{metric}"]) for r in history if f"val_{metric}" in r]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        ax1.plot(*zip(*train), label="train loss", color="tab:blue", alpha=0.8)
    if val:
        ax1.plot(*zip(*val), "o-", label="validation loss", color="tab:orange")
    (
        ax1.set_xlabel("step"),
        ax1.set_ylabel("loss"),
        ax1.set_title("loss (validation rising while train falls = over-fitting)", fontsize=9),
    )
    for (step, kind), color in zip(marks, ("tab:red", "tab:purple", "tab:brown")):
        ax1.axvline(step, color=color, ls=":", lw=1.5, label=f"{kind} from step {step}")
    ax1.legend(), ax1.grid(alpha=0.3)
    if val_metric:
        ax2.plot(*zip(*val_metric), "o-", color="tab:green", label=f"validation {metric}")
        best = (max if higher_is_better else min)(val_metric, key=lambda x: x[1])
        ax2.axvline(best[0], color="grey", ls="--", lw=1, label=f"best step {best[0]}")
        ax2.legend()
    (
        ax2.set_xlabel("step"),
        ax2.set_ylabel(metric),
        ax2.set_title(f"validation {metric}", fontsize=9),
        ax2.grid(alpha=0.3),
    )
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion(
    matrix: list[list[int]], labels: list[str], path: Path, title: str = "confusion matrix (test)"
) -> None:
    m = np.asarray(matrix)
    size = max(4.0, 0.6 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted"), ax.set_ylabel("true"), ax.set_title(title)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j, i, str(m[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black", fontsize=8
            )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_reliability(bins: dict, temperature: float, path: Path) -> None:
    """Reliability diagram of the test split: accuracy against confidence per bin, before and after the temperature
    (a calibrated model lies on the diagonal); the bars show how many examples each bin holds."""
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5.5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="calibrated")
    for name, color, label in (
        ("before", "tab:red", "before (T = 1)"),
        ("after", "tab:blue", f"after (T = {temperature:.3f})"),
    ):
        filled = [b for b in bins[name] if b["n"]]
        ax.plot([b["confidence"] for b in filled], [b["accuracy"] for b in filled], "o-", color=color, label=label)
        centres = [(b["low"] + b["high"]) / 2 for b in bins[name]]
        offset = -0.012 if name == "before" else 0.012
        hist.bar([c + offset for c in centres], [b["n"] for b in bins[name]], width=0.024, color=color, alpha=0.7)
    ax.set_ylabel("accuracy"), ax.set_title("reliability (test split)", fontsize=10), ax.legend(), ax.grid(alpha=0.3)
    ax.set_xlim(0, 1), ax.set_ylim(0, 1)
    hist.set_xlabel("confidence (top probability)"), hist.set_ylabel("examples"), hist.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
