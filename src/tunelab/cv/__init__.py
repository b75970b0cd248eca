"""Cross-validation: `tunelab train RECIPE --folds K` (or `train.folds: K`) trains K ordinary runs under one parent run
and reports their mean, their spread and their out-of-fold predictions.

    folds.py     which fold each example goes to (stratified, seeded)
    crossval.py  cross_validate: the examples, the fold data, the fold runs, the parent run directory
    summary.py   oof.jsonl, cv.json (mean and sd per section: SECTIONS) and the model card

Its names load on first use (`from tunelab.cv import cross_validate`): importing the package imports none of them.
"""

from __future__ import annotations

from tunelab.lazy import exports

__getattr__, __dir__ = exports(
    __name__, {"cross_validate": "crossval", "SECTIONS": "summary", "card": "summary", "assign_folds": "folds"}
)
