"""Right-padding, the one way every family's collate pads a micro-batch to its longest row."""

from __future__ import annotations

from typing import Sequence

import torch


def pad(sequences: Sequence[Sequence[int]], value: int, width: int | None = None) -> torch.Tensor:
    """Integer sequences -> a (len, width) long tensor, each row right-padded with `value` (width: the longest)."""
    width = max(len(s) for s in sequences) if width is None else width
    out = torch.full((len(sequences), width), value, dtype=torch.long)
    for i, s in enumerate(sequences):
        out[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
    return out


def attention_mask(sequences: Sequence[Sequence[int]], width: int | None = None) -> torch.Tensor:
    """1 over each row's real tokens, 0 over its padding."""
    return pad([[1] * len(s) for s in sequences], 0, width)
