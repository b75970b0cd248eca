"""`tunelab ensemble RUN [RUN ...] --out DIR [--method mean|weighted|vote]` (or `--from-folds CV_RUN`): build an
ensemble directory. It reads top to bottom:

    the members: the runs given and the folds of a cross-validation; each finished, all with one task, label space
        and text columns (members.py)
    their weights: the validation metric each chose its checkpoint by (w_i ∝ metric_i, or 1/metric_i when lower is
        better; used by --method weighted)
    the ensemble directory: run.json (kind "ensemble", each member by path and model hash, the method, the weights)
        and config.yaml (the recipe the members were trained from: its data columns)
    the report: the ensemble and each member on the same examples — the members' test split, or --data FILE —
        in ensemble.json and the model card (report.py)

The directory is then a run like any other for `tunelab predict`, `eval`, `serve` and `tunelab.load`: the task's
ensemble predictor (the registry names it) loads each member and combines their outputs (combine.py).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional, Sequence

from tunelab.ensembles.combine import METHODS, member_weights, methods_for
from tunelab.ensembles.members import check_compatible, describe, reference
from tunelab.ensembles.report import card, report_examples
from tunelab.errors import TunelabError
from tunelab.metrics import scalars
from tunelab.registry import TASKS
from tunelab.runs.rundir import RunDir


def build(
    members: Sequence[Path] = (),
    out: Path = Path("runs/ensemble"),
    method: str = "mean",
    from_folds: Optional[Path] = None,
    data: Optional[Path] = None,
    overwrite: bool = False,
    load=None,
) -> tuple[Path, dict]:
    """The ensemble directory and its report (ensemble.json). `load` is tunelab.predictors.load, handed in by the API
    (the report scores the ensemble through the same predictor `tunelab.load` gives)."""
    if method not in METHODS:
        raise TunelabError(f"--method {method!r}: choose one of {', '.join(METHODS)}.")
    final = _check_out(Path(out), overwrite)

    # ---- the members
    paths = [*_folds_of(from_folds), *map(Path, members)] if from_folds else [Path(m) for m in members]
    if len(paths) < 2:
        raise TunelabError("An ensemble needs at least two members: give run directories, or --from-folds CV_RUN.")
    if len({p.resolve() for p in paths}) < len(paths):
        raise TunelabError("A run is given twice: each member once (--method weighted weighs them).")
    described = [describe(p) for p in paths]
    check_compatible(described)
    task = described[0]["task"]
    if method not in methods_for(TASKS[task].target):  # a real-valued target: the members' values are averaged
        raise TunelabError(f"--method {method}: {task} ensembles average the members' values (--method mean).")

    # ---- their weights
    metric, higher = _selection(described)
    weights = _weights(described, metric, higher) if method == "weighted" else [1 / len(described)] * len(described)

    # ---- the ensemble directory, staged beside --out and moved there once the report is written (a failure
    # leaves nothing behind, and --overwrite never loses the old ensemble to a failed build)
    run = RunDir(final.with_name(final.name + ".building"), lineage={"kind": "ensemble", "parent": None})
    shutil.rmtree(run.path, ignore_errors=True)
    run.path.mkdir(parents=True)
    try:
        report = _write(run, final, described, paths, weights, method, metric, higher, from_folds, data, load)
    except BaseException:
        shutil.rmtree(run.path, ignore_errors=True)
        raise
    shutil.rmtree(final, ignore_errors=True)
    os.replace(run.path, final)
    return final, report


def _write(run: RunDir, final: Path, described, paths, weights, method, metric, higher, from_folds, data, load):
    task = described[0]["task"]
    run.update_info(task=task, kind="ensemble", parent=None, status="completed", method=method,
                    pipeline_tag=TASKS[task].pipeline_tag, from_folds=str(from_folds) if from_folds else None,
                    labels=described[0]["labels"], selection={"metric": metric, "mode": "max" if higher else "min"},
                    preprocessing=RunDir(paths[0]).info.get("preprocessing", {}),
                    members=[reference(m, run.path, w) for m, w in zip(described, weights)])  # fmt: skip
    recipe = (Path(from_folds) if from_folds else paths[0]) / "config.yaml"
    shutil.copy(recipe, run / "config.yaml")

    # ---- the report: the ensemble against each member on the same examples
    predictor = load(run.path)
    records, on = report_examples(predictor, described, from_folds, data)
    ensemble_metrics, member_metrics = predictor.evaluate_records(records, with_members=True)
    report = {"method": method, "on": on, "n": len(records), "metric": metric,
              "ensemble": ensemble_metrics,
              "members": [{"path": str(p), "weight": w, "metrics": scalars(m)}
                          for p, w, m in zip(paths, weights, member_metrics)]}  # fmt: skip
    best = max(member_metrics, key=lambda m: m[metric] if higher else -m[metric])
    report["best_member"] = {metric: best[metric], "gain": ensemble_metrics[metric] - best[metric]}
    run.write_json("ensemble.json", report)
    run.update_info(ensemble={metric: ensemble_metrics[metric], "best_member": best[metric], "on": on})
    (run / "README.md").write_text(card(final, run.info, report), encoding="utf-8")
    return report


# ---------------------------------------------------------------- the members


def _folds_of(cv_dir: Path) -> list[Path]:
    info = RunDir.open(cv_dir).info
    if info.get("kind") != "cv":
        raise TunelabError(
            f"{cv_dir}: --from-folds takes a cross-validation (tunelab train --folds K); this is a "
            f"{info.get('kind', 'train')} run. Give it as a member instead."
        )
    folds = [Path(cv_dir) / "folds" / str(j) for j in range(1, int(info.get("folds", 0)) + 1)]
    if info.get("status") != "completed":
        raise TunelabError(
            f"{cv_dir}: the cross-validation did not finish (status {info.get('status')!r}). Run the same "
            "`tunelab train --folds K` command again: it trains the folds that are left."
        )
    return folds


def _weights(described: list[dict], metric: str, higher: bool) -> list[float]:
    """--method weighted: each member's validation metric, normalised (combine.member_weights)."""
    values = [m["validation"].get(metric) for m in described]
    missing = next((m["path"] for m, v in zip(described, values) if not isinstance(v, (int, float))), None)
    if missing is not None:
        raise TunelabError(
            f"{missing}: no validation {metric} to weigh it by (it trained without a validation set). Use "
            "--method mean or vote, or members that validated."
        )
    try:
        return member_weights(values, higher).tolist()
    except ValueError:
        raise TunelabError(
            f"--method weighted: the members' validation {metric} ({', '.join(map(str, values))}) give no weights "
            "(all zero, or a zero where lower is better). Use --method mean."
        ) from None


def _selection(described: list[dict]) -> tuple[str, bool]:
    """The metric the members chose their checkpoints by (the first member's; the task's default if it has none)."""
    family = TASKS[described[0]["task"]]
    selection = described[0]["selection"]
    metric = selection.get("metric") or family.metric
    return metric, (selection.get("mode") or family.mode) == "max"


# ---------------------------------------------------------------- the directory and the report


def _check_out(out: Path, overwrite: bool) -> Path:
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise TunelabError(f"{out}: the output directory already holds files. Choose another --out, or "
                               "replace it with --overwrite.")  # fmt: skip
        if not RunDir(out).info:
            raise TunelabError(f"{out}: not a run directory; --overwrite replaces only runs. Choose another --out.")
    return out
