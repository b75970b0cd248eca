"""Ensembles (this package is `ensembles` so that it does not shadow the `tunelab.ensemble(...)` function):
`tunelab ensemble RUN [RUN ...] --out DIR [--method mean|weighted|vote]` (or `--from-folds CV_RUN`).
It reads top to bottom:

    the members: the runs given and the folds of a cross-validation; each finished, all with one task, label space
        and text columns (members.py)
    their weights: the validation metric each chose its checkpoint by (w_i ∝ metric_i, or 1/metric_i when lower is
        better; used by --method weighted)
    the ensemble directory: run.json (kind "ensemble", each member by path and model hash, the method, the weights)
        and config.yaml (the recipe the members were trained from: its data columns)
    the report: the ensemble and each member on the same examples — the members' test split, or --data FILE —
        in ensemble.json and the model card

The directory is then a run like any other for `tunelab predict`, `eval`, `serve` and `tunelab.load`: the task's
ensemble predictor (the registry names it) loads each member and combines their outputs (combine.py).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Optional, Sequence

from tunelab.config import load_run_config
from tunelab.ensembles.combine import METHODS, member_weights
from tunelab.ensembles.members import check_compatible, describe, reference
from tunelab.errors import TunelabError
from tunelab.metrics import scalars
from tunelab.registry import TASKS, load_object
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
    if task == "regression" and method != "mean":
        raise TunelabError(f"--method {method}: regression ensembles average the members' values (--method mean).")

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
    records, on = _report_examples(predictor, described, from_folds, data)
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


def _report_examples(predictor, described: list[dict], from_folds, data) -> tuple[list[dict], str]:
    """The examples every member is scored on: --data FILE, the cross-validation's test split, or the members' own
    test split (which must be the same split for all)."""
    if data is not None:
        return predictor.read(Path(data)), str(data)
    if from_folds:
        test = Path(from_folds) / "data" / "test.jsonl"
        rows = [json.loads(line) for line in test.read_text(encoding="utf-8").splitlines() if line.strip()]
        if rows:
            return rows, f"the test split of {from_folds}"
    else:
        family = TASKS[described[0]["task"]]
        splits = [load_object(family.examples)(load_run_config(m["path"] / "config.yaml")).test for m in described]
        key = lambda rows: [(r["text"], r.get("text_pair"), json.dumps(r["label"])) for r in rows]  # noqa: E731
        first = key(splits[0])
        for m, rows in zip(described[1:], splits[1:]):
            if key(rows) != first:
                raise TunelabError(
                    f"{m['path']} and {described[0]['path']} were tested on different splits, so no split is held "
                    "out from all of them. Give a labelled file none of them trained on: --data FILE."
                )
        if first:
            return splits[0], "the members' test split"
    raise TunelabError("The members have no test split to compare them on: give a labelled file with --data FILE.")


def card(path: Path, info: dict, report: dict) -> str:
    names = [n for n in scalars(report["ensemble"]) if n != "threshold"]
    lines = [f"# {info['task']} ensemble of {len(report['members'])} runs ({report['method']})", "",
             f"The members' predictions combined: {_METHOD_WORDS[report['method']]}. Scored on {report['on']} "
             f"({report['n']} examples):", "",
             "| | weight | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names),
             "| **ensemble** | | " + " | ".join(f"**{report['ensemble'][n]:.4f}**" for n in names) + " |"]  # fmt: skip
    for m in report["members"]:
        cells = " | ".join(f"{m['metrics'][n]:.4f}" for n in names)
        lines.append(f"| {m['path']} | {m['weight']:.3f} | {cells} |")
    lines += ["", f"Use: `tunelab predict {path} \"some text\"`, `tunelab eval {path} --data FILE`, "
              f"`tunelab serve {path}`. Each member is loaded from its own run (run.json lists them by path and "
              "model hash); there is no single model to export.", ""]  # fmt: skip
    return "\n".join(lines)


_METHOD_WORDS = {
    "mean": "the mean of their probabilities (of their values, for regression)",
    "weighted": "their probabilities averaged with weights proportional to each member's validation metric",
    "vote": "the majority label (per label, for multilabel), ties broken by the mean probability",
}
