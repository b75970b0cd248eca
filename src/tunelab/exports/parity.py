"""An ONNX export's parity with the run's PyTorch model, measured by the export itself on the run's test split (or
`--check-data FILE`), through the run's own predictor: the same tokenisation, batches and post-processing, with the
PyTorch model swapped for the ONNX file (predictors/onnx.py's OnnxModel).

    fp32   max |output difference| over every logit and embedding of every batch (the export refuses > 1e-4)
    int8   agreement of the answers (labels; each label on/off for multilabel; the tag of every word for ner), the
           change of the run's selection metric (accuracy, F1: in points; mse: as is), the embeddings' cosine
           similarity, and both file sizes
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from tunelab.config import load_run_config
from tunelab.errors import TunelabError
from tunelab.registry import TASKS, load_object
from tunelab.runs.rundir import RunDir

# int8 targets (issue 32): reported with the numbers, not enforced (a quantised file is a trade the user chose)
MIN_AGREEMENT, MAX_METRIC_DROP = 0.99, 0.5


def measure(run: RunDir, fp32: Path, int8: Optional[Path], check_data: Optional[Path]) -> dict:
    """The parity dict of manifest.json (flat: the CLI prints it key by key)."""
    from tunelab.predictors.embedder import Embedder
    from tunelab.predictors.onnx import OnnxModel

    family = TASKS[run.info["task"]]
    torch_embedder = Embedder.from_run(run.path, "cpu") if "embeddings" in family.endpoints else None
    reference = load_object(family.predictor)(run, "cpu") if family.predictor else None
    if reference is not None:
        reference.precision = "fp32"  # the file is fp32: compare with fp32, whatever the run serves in
        records = reference.examples(check_data)
        texts = [r["text"] if "text" in r else " ".join(r["tokens"]) for r in records]
        on = str(check_data) if check_data else "the run's test split"
    else:
        records = None
        texts, on = _texts(run, check_data)
    if torch_embedder is not None:
        torch_embedder.precision = "fp32"
    parity: dict = {"on": on, "examples": len(texts)}
    if not texts:
        raise TunelabError(
            f"{run.path}: {on} holds no examples, so the export's parity cannot be measured. Give a labelled file "
            "to measure it on: --check-data FILE."
        )

    def side(model):
        """(decisions, metrics, recorded outputs) of the predictor and embedder with `model` in place."""
        kept: list[np.ndarray] = []
        decisions = metrics = None
        if reference is not None:
            predictor = reference if model is None else _swapped(reference, model)
            hook = predictor.model.register_forward_hook(lambda m, a, out: kept.append(out.logits.float().numpy()))
            metrics = predictor.evaluate_records(records)
            hook.remove()
            decisions = predictor.decisions(records)
        vectors = None
        if torch_embedder is not None:
            embedder = torch_embedder if model is None else Embedder(model, torch_embedder.tokenizer,
                                                                     torch_embedder.max_length)  # fmt: skip
            vectors = embedder.embed(texts)
        return decisions, metrics, kept, vectors

    with torch.inference_mode():
        base = side(None)
        exported = side(OnnxModel(fp32))
    diffs = [np.abs(a - b).max() for a, b in zip(base[2], exported[2])]
    if base[3] is not None:
        diffs.append(np.abs(base[3] - exported[3]).max())
    parity["fp32_max_abs_diff"] = float(max(diffs, default=0.0))
    parity["fp32_size_mb"] = round(fp32.stat().st_size / 2**20, 2)
    if reference is not None:
        parity[f"fp32_{_metric(run)}"] = _value(base[1], run)
    if int8 is None:
        return parity
    quantised = side(OnnxModel(int8))
    parity["int8_size_mb"] = round(int8.stat().st_size / 2**20, 2)
    checks = []
    if reference is not None:
        name = _metric(run)
        parity[f"int8_{name}"] = _value(quantised[1], run)
        if base[0].size:
            agreement = float(np.mean(np.asarray(base[0] == quantised[0]).all(axis=tuple(range(1, base[0].ndim)))))
            parity["int8_label_agreement"] = round(agreement, 4)
            checks.append(agreement >= MIN_AGREEMENT)
        change = _change(base[1], quantised[1], run)
        parity[f"int8_{name}_change" + ("_points" if _bounded(run) else "")] = change
        if _bounded(run):
            checks.append(-change <= MAX_METRIC_DROP)
    if base[3] is not None:
        cosine = np.sum(base[3] * quantised[3], axis=1)  # unit vectors: the dot product
        parity["int8_embedding_cosine_mean"] = round(float(cosine.mean()), 5)
        parity["int8_embedding_cosine_min"] = round(float(cosine.min()), 5)
    if checks:
        parity["int8_targets_met"] = bool(all(checks))
    return parity


def _swapped(predictor, model):
    """A shallow copy of `predictor` answering with `model`: every other part (tokenizer, spec, labels) shared."""
    other = copy.copy(predictor)
    other.model = model
    other.first_token_only = False
    return other


def _metric(run: RunDir) -> str:
    return (run.info.get("selection") or {}).get("metric") or TASKS[run.info["task"]].metric


def _bounded(run: RunDir) -> bool:
    """Whether the metric is a fraction (accuracy, F1), reported in points (x100); else (mse) as it is."""
    return (run.info.get("selection") or {}).get("mode", TASKS[run.info["task"]].mode) == "max"


def _value(metrics: dict, run: RunDir) -> float:
    return round(float(metrics[_metric(run)]), 6)


def _change(before: dict, after: dict, run: RunDir) -> float:
    change = float(after[_metric(run)]) - float(before[_metric(run)])
    return round(change * 100, 3) if _bounded(run) else round(change, 6)


def _texts(run: RunDir, check_data: Optional[Path]) -> tuple[list[str], str]:
    """The texts of a run without a predictor (mlm: documents), from its family's `held_out` hook: a file's text
    column, or the run's test documents as its story split them (its validation documents where it holds none out)."""
    cfg = load_run_config(run / "config.yaml")
    held_out = load_object(TASKS[run.info["task"]].held_out)(cfg, Path(check_data) if check_data else None)
    on = str(check_data) if check_data is not None else "the run's test documents (validation where none are held out)"
    return [text for text, _ in held_out], on
