"""tunelab doctor: checks a data set before training (`tunelab doctor RECIPE`), and a finished run's labels
(`tunelab doctor --labels RUN`).

    report.py    doctor: reads every row, makes the run's splits, runs the checks, writes doctor.json/doctor.md
                 (Report, default_out, markdown, STRICT: what --strict fails on)
    family.py    FamilyData: what a task family hands the doctor (tasks/<family>/doctor.py; the registry names it)
    checks.py    the checks, each a function of records returning Findings (rows as read, text quality, labels,
                 conflicts, duplicates, leakage, near-duplicates)
    near.py      near-duplicate texts across splits (character 5-gram Jaccard)
    lengths.py   lengths in the model's tokens, and their plot
    advice.py    recommendations that follow from the findings
    estimate.py  --estimate: the run's time and peak memory, from a few steps measured in a child process
    labels.py    --labels: the examples whose label is probably wrong (confident learning)

Its names load on first use (`from tunelab.doctor import doctor`): importing the package imports none of them, so a
family's doctor.py imports family.py alone.
"""

from __future__ import annotations

from tunelab.lazy import exports

__getattr__, __dir__ = exports(__name__, {
    "doctor": "report", "default_out": "report", "markdown": "report", "Report": "report", "STRICT": "report",
    "Finding": "checks", "FamilyData": "family", "label_issues": "labels",
})  # fmt: skip
