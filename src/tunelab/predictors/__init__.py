"""Predictors: load a run directory and apply the model with exactly the training preprocessing."""

from __future__ import annotations

from pathlib import Path

from tunelab.runs.rundir import RunDir

PREDICTORS = {
    "classification": ("tunelab.predictors.classify", "TextClassifier"),
    "multilabel": ("tunelab.predictors.classify", "TextClassifier"),
    "regression": ("tunelab.predictors.classify", "TextClassifier"),
    "ner": ("tunelab.predictors.tokens", "EntityTagger"),
    "sft": ("tunelab.predictors.generate", "Generator"),
    "lm": ("tunelab.predictors.generate", "Generator"),
}


def load(run_dir: str | Path):
    import importlib

    from tunelab.errors import TunelabError

    run = RunDir.open(run_dir)
    task = run.info.get("task")
    if task not in PREDICTORS:
        raise TunelabError(f"{run.path}: task '{task}' has no predictor (known: {', '.join(PREDICTORS)}).")
    module, name = PREDICTORS[task]
    return getattr(importlib.import_module(module), name)(run)
