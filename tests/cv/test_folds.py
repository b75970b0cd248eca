"""Fold assignment: disjoint and covering by construction; balanced, stratified and repeatable by test."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from tunelab.cv.folds import assign_folds


def test_folds_are_balanced_stratified_and_repeatable():
    rng = random.Random(0)
    labels = [rng.choice("aaaaabbbc") for _ in range(103)]
    fold = assign_folds(len(labels), 5, seed=7, strata=labels)
    assert sorted(set(fold)) == [0, 1, 2, 3, 4]
    sizes = Counter(fold).values()
    assert max(sizes) - min(sizes) <= 1  # 103 = 21 + 21 + 21 + 20 + 20
    for label in set(labels):
        per_fold = Counter(f for f, y in zip(fold, labels) if y == label)
        counts = [per_fold.get(k, 0) for k in range(5)]
        assert max(counts) - min(counts) <= 1, (label, counts)  # each label's share in every fold
    assert assign_folds(len(labels), 5, seed=7, strata=labels) == fold
    assert assign_folds(len(labels), 5, seed=8, strata=labels) != fold


def test_without_strata_the_folds_are_a_seeded_shuffle():
    fold = assign_folds(10, 3, seed=0)
    assert sorted(Counter(fold).values()) == [3, 3, 4] and fold != sorted(fold)
    with pytest.raises(ValueError):
        assign_folds(2, 3, seed=0)
