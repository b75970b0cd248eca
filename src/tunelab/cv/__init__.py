"""Cross-validation: `tunelab train RECIPE --folds K` (or `train.folds: K`) trains K ordinary runs under one parent run
and reports their mean, their spread and their out-of-fold predictions.

    folds.py     which fold each example goes to (stratified, seeded)
    crossval.py  cross_validate: the examples, the fold data, the fold runs, the parent run directory
    summary.py   oof.jsonl, cv.json (mean and sd per section: SECTIONS) and the model card

Its names load on first use (`from tunelab.cv import cross_validate`): importing the package imports none of them.
"""

from __future__ import annotations

import importlib

_EXPORTS = {"cross_validate": "crossval", "SECTIONS": "summary", "card": "summary", "assign_folds": "folds"}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
