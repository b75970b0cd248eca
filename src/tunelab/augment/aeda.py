"""AEDA (Karimi et al., 2021, "AEDA: An Easier Data Augmentation Technique for Text Classification"): insert
punctuation marks at random positions between the words, between 1 and a third of the words' count of them."""

from __future__ import annotations

import random

MARKS = (".", ";", "?", ":", "!", ",")


def aeda(text: str, rate: float, rng: random.Random) -> str:
    """`rate`: the most marks inserted, as a share of the words (AEDA: 1/3)."""
    words = text.split()
    if not words:
        return text
    for _ in range(rng.randint(1, max(1, round(rate * len(words))))):
        words.insert(rng.randrange(len(words) + 1), rng.choice(MARKS))
    return " ".join(words)
