"""augment(): the recipe's data.augment applied to the training records, each followed by its `copies` new ones with
its label; copy k of example i is a pure function of (data.split_seed, i, k)."""

from __future__ import annotations

import random

from tunelab.augment.aeda import aeda
from tunelab.augment.eda import OPERATIONS, eda
from tunelab.augment.paraphrase import paraphrases
from tunelab.errors import TunelabError


def augment(records: list[dict], cfg, seed: int, show_progress: bool = False) -> tuple[list[dict], int]:
    """(the records, each followed by its copies; how many were added). `cfg` is the recipe's data.augment."""
    if cfg.method == "none":
        return records, 0
    if cfg.method == "eda":
        operations = [op for op in OPERATIONS if getattr(cfg.eda, op) > 0]
        if not operations:
            raise TunelabError("data.augment.eda: every rate is 0, so no copy could change. Set one above 0.")
    written = None
    if cfg.method == "paraphrase":  # every copy of every text in one batched, cached generation
        written = paraphrases([r["text"] for r in records], cfg.paraphrase, cfg.copies, seed, show_progress)
    out = []
    for i, r in enumerate(records):
        out.append(r)
        for k in range(cfg.copies):
            rng = random.Random(f"{seed}/{i}/{k}")  # (string seeds are hashed with SHA-512: stable across runs)
            if written is not None:
                text, how = written[i][k], "paraphrase"
            elif cfg.method == "eda":
                operation = operations[k % len(operations)]
                text, how = eda(r["text"], operation, getattr(cfg.eda, operation), rng), f"eda {operation}"
            else:
                text, how = aeda(r["text"], cfg.aeda, rng), "aeda"
            out.append({**r, "text": text, "augmented_from": r.get("line"), "augmentation": how})
    return out, len(out) - len(records)
