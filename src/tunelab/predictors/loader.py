"""load: the predictor of a run directory, as the registry names it for the run's task (or its ensemble predictor)."""

from __future__ import annotations

from pathlib import Path

from tunelab.errors import TunelabError
from tunelab.registry import TASKS, load_object, model_class
from tunelab.runs.rundir import RunDir


def load(run_dir: str | Path):
    """The predictor the registry names for the run's task (run.json says which task), or its ensemble predictor.
    An ONNX export folder (tunelab export --format onnx) loads the same way: its predictor runs the .onnx file."""
    from tunelab.predictors.onnx import EmbeddingPredictor, onnx_file

    run = RunDir.open(run_dir)
    if run.info.get("kind") == "cv":
        raise TunelabError(
            f"{run.path}: a cross-validation, not one model: its {run.info.get('folds')} fold models are ordinary runs "
            f"under {run.path / 'folds'}. Predict with one of them (e.g. {run.path / 'folds' / '1'}); an ensemble of "
            f"the folds is the way to use them all: tunelab ensemble --from-folds {run.path} --out DIR."
        )
    task = run.info.get("task")
    family = TASKS.get(task)
    if run.info.get("kind") == "ensemble":  # its members' predictor, combined (tunelab/ensembles)
        if family is None or family.ensemble is None:
            raise TunelabError(f"{run.path}: an ensemble of task '{task}', which this version cannot load.")
        return load_object(family.ensemble)(run)
    if family is not None and family.predictor is None and "embeddings" in family.endpoints and onnx_file(run.path):
        return EmbeddingPredictor(run)  # an ONNX export of a run that answers embeddings only (mlm)
    if family is None or family.predictor is None:
        with_predictor = ", ".join(name for name, f in TASKS.items() if f.predictor)
        raise TunelabError(
            f"{run.path}: task '{task}' has no predictor (tasks with one: {with_predictor}). Its model/ folder loads "
            f"with transformers: {model_class(task)}.from_pretrained."
        )
    return load_object(family.predictor)(run)
