"""K-fold assignment: stratified, seeded, a pure function of the examples' strata and the seed.

Each stratum (a label, a regression quantile bin, or one stratum for all) is shuffled with the seed and dealt to the
folds in turn, starting where the previous stratum stopped, so every fold gets each stratum's share (±1) and the fold
sizes differ by at most one.
"""

from __future__ import annotations

from typing import Hashable, Optional, Sequence

import numpy as np


def assign_folds(n: int, k: int, seed: int, strata: Optional[Sequence[Hashable]] = None) -> list[int]:
    """fold[i] in 0..k-1 for each of n examples."""
    if k < 2 or k > n:
        raise ValueError(f"{k} folds of {n} examples")
    rng = np.random.default_rng(seed)
    groups: dict = {}
    for i, s in enumerate(strata if strata is not None else [0] * n):
        groups.setdefault(s, []).append(i)
    fold = [0] * n
    turn = 0
    for key in sorted(groups, key=str):
        idx = np.array(groups[key])
        rng.shuffle(idx)
        for i in idx:
            fold[int(i)] = turn % k
            turn += 1
    return fold
