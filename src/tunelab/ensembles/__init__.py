"""Ensembles: several finished runs of one task combined into one predictor (`tunelab ensemble RUN [RUN ...] --out DIR`
or `--from-folds CV_RUN`). The package is `ensembles` so that it does not shadow the `tunelab.ensemble(...)` function.

    builder.py   build: checks the members, weighs them, writes the ensemble directory (run.json, config.yaml) and
                 its report
    members.py   the members: what the ensemble reads of each run, their compatibility, their references by path
                 and model hash (checked again on every load)
    combine.py   the arithmetic on the members' outputs: mean, weighted mean, vote; the member weights
    report.py    the examples the ensemble and its members are scored on, and the model card

The directory is then a run like any other for `tunelab predict`, `eval`, `serve` and `tunelab.load`: the task's
ensemble predictor (the registry names it, tasks/<family>/ensemble.py) loads each member and combines their outputs.
Its names load on first use (`from tunelab.ensembles import build`): importing the package imports none of them.
"""

from __future__ import annotations

from tunelab.lazy import exports

__getattr__, __dir__ = exports(
    __name__, {"build": "builder", "METHODS": "combine", "member_weights": "combine", "card": "report"}
)
