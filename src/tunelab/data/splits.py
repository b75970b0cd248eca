"""Deduplicate, then split seeded and stratified: train / validation / test."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Hashable, Optional

import numpy as np

from tunelab.config import DataConfig


@dataclass
class Splits:
    train: list
    validation: list
    test: list
    dropped_duplicates: int = 0


def dedupe(records: list[dict], key: Callable[[dict], Hashable]) -> tuple[list[dict], int]:
    """Keep the first occurrence of each key (exact duplicates across splits inflate scores)."""
    seen, out = set(), []
    for r in records:
        k = key(r)
        if k not in seen:
            seen.add(k)
            out.append(r)
    return out, len(records) - len(out)


def split(
    records: list, fractions: tuple[float, float], seed: int, strata: Optional[list] = None
) -> tuple[list, list, list]:
    """Split into (train, validation, test) with the given validation/test fractions.

    `strata` (one hashable per record) keeps each stratum's share equal across the splits; strata too rare
    to be split are kept whole in train.
    """
    val_frac, test_frac = fractions
    rng = np.random.default_rng(seed)
    groups: dict = {}
    for i, s in enumerate(strata if strata is not None else [0] * len(records)):
        groups.setdefault(s, []).append(i)
    train, val, test = [], [], []
    for key in sorted(groups, key=str):
        idx = np.array(groups[key])
        rng.shuffle(idx)
        n = len(idx)
        n_test = int(round(n * test_frac))
        n_val = int(round(n * val_frac))
        test += idx[:n_test].tolist()
        val += idx[n_test : n_test + n_val].tolist()
        train += idx[n_test + n_val :].tolist()
    return [records[i] for i in sorted(train)], [records[i] for i in sorted(val)], [records[i] for i in sorted(test)]


def make_splits(
    train: list[dict],
    validation: Optional[list[dict]],
    test: Optional[list[dict]],
    data: DataConfig,
    key: Callable[[dict], Hashable],
    strata: Callable[[list[dict]], Optional[list]] = lambda records: None,
) -> Splits:
    """The split every labelled task shares.

    Deduplicate train (also against given validation/test files), split off what no file gives (seeded, stratified
    by `strata`), then cap train at data.limit (validation and test keep their size)."""
    dropped = 0
    if data.dedupe:
        train, dropped = dedupe(train, key=key)
        held_out = {key(r) for r in (validation or []) + (test or [])}
        before = len(train)
        train = [r for r in train if key(r) not in held_out]
        dropped += before - len(train)
    fractions = (
        0.0 if validation is not None else data.validation_fraction,
        0.0 if test is not None else data.test_fraction,
    )
    parts = split(train, fractions, data.split_seed, strata(train))
    splits = Splits(
        parts[0], parts[1] if validation is None else validation, parts[2] if test is None else test, dropped
    )
    if data.limit and len(splits.train) > data.limit:
        limit = (0.0, 1 - data.limit / len(splits.train))
        splits.train = split(splits.train, limit, data.split_seed, strata(splits.train))[0]
    return splits


def draw(records: list, n: int, seed: int, strata: Optional[list] = None) -> tuple[list, list]:
    """(n records drawn seeded, stratified — each stratum's share kept, every stratum at least once while n allows —,
    the rest), both in their original order. The few-shot protocol's sampler."""
    if n >= len(records):
        return list(records), []
    rng = np.random.default_rng(seed)
    groups: dict = {}
    for i, s in enumerate(strata if strata is not None else [0] * len(records)):
        groups.setdefault(s, []).append(i)
    keys = sorted(groups, key=str)
    for key in keys:
        rng.shuffle(groups[key])
    share = {k: len(groups[k]) * n / len(records) for k in keys}
    take = {k: min(len(groups[k]), max(1, int(share[k]))) for k in keys}
    while sum(take.values()) > n:  # more strata than n: the largest give way first
        k = max((k for k in keys if take[k] > 0), key=lambda k: (take[k], str(k)))
        take[k] -= 1
    for k in sorted(keys, key=lambda k: (take[k] - share[k], str(k))):  # the remainder to the furthest below share
        if sum(take.values()) >= n:
            break
        if take[k] < len(groups[k]):
            take[k] += 1
    chosen = sorted(i for k in keys for i in groups[k][: take[k]])
    picked = set(chosen)
    return [records[i] for i in chosen], [r for i, r in enumerate(records) if i not in picked]


def strata(records: list[dict], how: Optional[str]) -> Optional[list]:
    """One stratum per record, as the registry's `stratify` says: "label" (the label itself), "quantile" (a regression
    label's quantile bin, from 20 records on) or None (no stratification)."""
    if how == "label":
        return [r["label"] for r in records]
    if how == "quantile" and len(records) >= 20:
        return quantile_bins([r["label"] for r in records])
    return None


def quantile_bins(values: list[float], bins: int = 10) -> list[int]:
    """Stratum per value for regression: which of `bins` quantile bins it falls into."""
    edges = np.quantile(np.asarray(values, dtype=float), np.linspace(0, 1, bins + 1)[1:-1])
    return np.searchsorted(edges, values, side="right").tolist()


def split_groups(
    records: list, fractions: tuple[float, float], seed: int, key: Callable[[dict], Hashable]
) -> tuple[list, list, list]:
    """Split whole groups (e.g. every answer to one question goes to the same split), seeded."""
    groups: dict = {}
    for r in records:
        groups.setdefault(key(r), []).append(r)
    parts = split(list(groups), fractions, seed)
    return tuple([r for k in part for r in groups[k]] for part in parts)
