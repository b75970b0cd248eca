"""Rows for causal-LM training: one sample per row, or several packed into a row of at most `block_size` tokens.

A packed row concatenates samples and restarts `position_ids` at 0 for each; the model then keeps every sample
to itself (transformers turns restarting positions into a block-diagonal causal mask when no attention_mask
is given). Since each sample's first label is never trained (nothing predicts it), a packed row trains
exactly the tokens of its samples, with exactly their loss.
"""

from __future__ import annotations

import torch

from tunelab.data import IGNORE
from tunelab.data.padding import pad
from tunelab.errors import TunelabError


def as_rows(samples: list[dict], block_size: int, packing: bool, source: str = "the training data") -> list[dict]:
    return pack(samples, block_size, source) if packing else [with_positions(s) for s in samples]


def with_positions(sample: dict) -> dict:
    n = len(sample["input_ids"])
    return {
        "input_ids": list(sample["input_ids"]),
        "labels": list(sample["labels"]),
        "position_ids": list(range(n)),
        "length": n,
    }


def first_fit(lengths: list[int], block_size: int, source: str = "the training data") -> list[list[int]]:
    """First-fit decreasing: longest samples first, each into the first row with room. Deterministic. The samples
    (indices) of each row."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    rows: list[list[int]] = []
    free: list[int] = []
    for i in order:
        n = lengths[i]
        if n > block_size:
            raise TunelabError(
                f"{source}: a sample of {n} tokens does not fit a packed row of {block_size} tokens (data.max_length). "
                f"Raise data.max_length, keep data.overlong: truncate (the default), or set data.packing: false."
            )
        slot = next((k for k, room in enumerate(free) if room >= n), None)
        if slot is None:
            rows.append([])
            free.append(block_size)
            slot = len(rows) - 1
        rows[slot].append(i)
        free[slot] -= n
    return rows


def packed_lengths(lengths, block_size: int) -> list[int]:
    """The tokens of each packed row the samples make (what `tunelab doctor --estimate` counts steps from)."""
    lengths = [int(n) for n in lengths]
    return [sum(lengths[i] for i in row) for row in first_fit(lengths, block_size)]


def pack(samples: list[dict], block_size: int, source: str = "the training data") -> list[dict]:
    """Rows of the samples packed by first_fit, each row's samples in their original order."""
    rows = first_fit([len(s["input_ids"]) for s in samples], block_size, source)
    out = []
    for members in rows:
        row = {"input_ids": [], "labels": [], "position_ids": []}
        for i in sorted(members):  # original order inside a row
            s = with_positions(samples[i])
            for key in row:
                row[key] += s[key]
        row["length"] = len(row["input_ids"])
        out.append(row)
    return out


def collate(rows: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest row. No attention_mask: padding sits after the real tokens (causal attention never
    looks ahead) and its positions restart at 0, so it is a separate, untrained 'sample'."""
    ids, labels = pad([r["input_ids"] for r in rows], pad_id), pad([r["labels"] for r in rows], IGNORE)
    width = ids.shape[1]
    positions = pad([r["position_ids"] + list(range(width - len(r["input_ids"]))) for r in rows], 0)
    return {"input_ids": ids, "labels": labels, "position_ids": positions}
