"""An ensemble's members: finished runs, referenced in its run.json by path (relative to the ensemble directory) and
by the content hash of their model/ folder, so a member moved, deleted or trained again is caught before it is used."""

from __future__ import annotations

import os
from pathlib import Path

from tunelab.errors import TunelabError
from tunelab.registry import TASKS
from tunelab.runs.rundir import RunDir

FINISHED = ("completed", "stopped_early")


def describe(path: Path) -> dict:
    """What the ensemble needs of one member: its task, labels, text columns, validation metrics and model hash."""
    run = RunDir.open(path)
    info = run.info
    if info.get("kind") in ("cv", "study", "ensemble"):
        hint = " (--from-folds takes a cross-validation)" if info.get("kind") == "cv" else ""
        raise TunelabError(f"{path}: a {info['kind']}, not one trained model: give its runs as members{hint}.")
    if info.get("status") not in FINISHED or not (run / "model").is_dir():
        raise TunelabError(
            f"{path}: not a finished run (status {info.get('status')!r}, model/ "
            f"{'present' if (run / 'model').is_dir() else 'missing'}). Finish it (tunelab train --resume {path}) "
            "or leave it out of the ensemble."
        )
    pre = info.get("preprocessing", {})
    return {
        "path": Path(path),
        "task": info.get("task"),
        "labels": info.get("labels"),
        "columns": {k: pre.get(k) for k in ("text_column", "text_pair_column")},
        "selection": info.get("selection", {}),
        "validation": run.read_json("metrics.json").get("validation", {}),
        "hash": run.model_hash(),
    }


def check_compatible(members: list[dict]) -> None:
    """Members must share the task, the label space and the text columns; the error names the first that differs."""
    first = members[0]
    family = TASKS.get(first["task"])
    if family is None or family.ensemble is None:
        able = ", ".join(t for t, f in TASKS.items() if f.ensemble)
        raise TunelabError(f"{first['path']}: task '{first['task']}' has no ensembles (tasks with them: {able}).")
    for m in members[1:]:
        for what, key in (("task", "task"), ("label space", "labels"), ("text columns", "columns")):
            if m[key] != first[key]:
                raise TunelabError(
                    f"{m['path']}: its {what} ({_show(m[key])}) differs from {first['path']}'s ({_show(first[key])}). "
                    "An ensemble's members predict the same thing from the same inputs: leave it out, or retrain it "
                    "with the same data columns and labels."
                )


def _show(value) -> str:
    if isinstance(value, dict) and all(k.isdigit() for k in value):
        return ", ".join(str(v) for _, v in sorted(value.items(), key=lambda kv: int(kv[0])))
    return str(value)


def reference(member: dict, ensemble_dir: Path, weight: float) -> dict:
    """The member as run.json records it: its path relative to the ensemble directory, its hash, its weight."""
    rel = os.path.relpath(Path(member["path"]).resolve(), Path(ensemble_dir).resolve())
    metric = member["selection"].get("metric")
    validation = {metric: member["validation"].get(metric)}
    return {"path": rel, "hash": member["hash"], "weight": weight, "validation": validation}


def resolve(ensemble: RunDir) -> list[Path]:
    """The members' directories, each checked against the hash it had when the ensemble was built."""
    paths = []
    for i, m in enumerate(ensemble.info.get("members", []), start=1):
        path = (ensemble.path / m["path"]).resolve()
        rebuild = f"Rebuild the ensemble with `tunelab ensemble ... --out {ensemble.path}`."
        if not (path / "model").is_dir():
            raise TunelabError(
                f"{ensemble.path}: member {i} ({m['path']}, i.e. {path}) is missing: it was moved or deleted since the "
                f"ensemble was built. Put it back, or {rebuild[0].lower() + rebuild[1:]}"
            )
        now = RunDir(path).model_hash()
        if now != m["hash"]:
            raise TunelabError(
                f"{ensemble.path}: member {i} ({path}) changed since the ensemble was built (model hash {m['hash']} "
                f"-> {now}). {rebuild}"
            )
        paths.append(path)
    return paths
