"""`tunelab train RECIPE --folds K` (or `train.folds: K`): the K fold runs of a cross-validation. It reads top to
bottom:

    read the examples as a training run would; the test split stays out of the folds
    deal train + validation into K stratified folds (by the registry's stratify key, seeded with data.split_seed)
    for each fold k not finished yet: an ordinary run under RUN/folds/k that trains on the other folds, with its own
        validation carved from *those* (checkpoint selection, early stopping), and is tested on fold k
    each fold model predicts the fold it never saw (oof.jsonl) and the test split
    cv.json (every fold, mean and sd), the model card, run.json (kind "cv")

The same command continues a killed cross-validation: finished folds are kept, an interrupted one resumes from its
checkpoint, the rest train. The fold data is written as JSONL under RUN/data/ so each fold run reads plain files.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from tunelab.config import Config
from tunelab.cv.folds import assign_folds
from tunelab.cv.summary import SECTIONS, card, mean_sd, oof_metrics, write_oof
from tunelab.data.splits import split, strata
from tunelab.errors import TunelabError
from tunelab.metrics import scalars
from tunelab.registry import TASKS, load_object
from tunelab.runs.checkpoint import Checkpointer, write_atomic
from tunelab.runs.index import runs_dir
from tunelab.runs.rundir import RunDir


def cross_validate(cfg: Config, train, overwrite: bool = False, show_progress: bool = True) -> tuple[Path, dict]:
    """K fold runs, each made with `train` (tunelab.train, handed in so this room does not import the API that calls
    it), and their summary; returns (the parent run directory, cv.json)."""
    from tunelab.predictors import load

    family = TASKS[cfg.task]
    k = cfg.train.folds
    if not family.cross_validate:
        able = ", ".join(t for t, f in TASKS.items() if f.cross_validate)
        raise TunelabError(f"train.folds: cross-validation is built for {able}, not for task '{cfg.task}'.")

    # ---- the examples, and their folds
    splits = load_object(family.examples)(cfg)
    pool = splits.train + splits.validation
    pool_strata = strata(pool, family.stratify)
    _check_enough(pool, pool_strata, k, family.stratify)
    fold_of = assign_folds(len(pool), k, cfg.data.split_seed, pool_strata)

    # ---- the parent run: the same recipe always lands in the same directory, so the same command continues it
    run = _parent(cfg, overwrite)
    data_dir = run / "data"
    pairs = any("text_pair" in r for r in pool)
    if not (data_dir / "test.jsonl").exists():
        for j in range(k):
            held_out = [r for r, f in zip(pool, fold_of) if f == j]
            rest = [r for r, f in zip(pool, fold_of) if f != j]
            inner_train, inner_val, _ = split(rest, (cfg.data.validation_fraction, 0.0), cfg.data.split_seed + j,
                                              strata(rest, family.stratify))  # fmt: skip
            for name, rows in (("train", inner_train), ("validation", inner_val), ("held_out", held_out)):
                _write_jsonl(data_dir / f"fold-{j + 1}" / f"{name}.jsonl", rows)
        _write_jsonl(data_dir / "test.jsonl", splits.test)

    # ---- each fold: an ordinary run
    for j in range(1, k + 1):
        fold_dir = run / "folds" / str(j)
        info = RunDir(fold_dir).info  # {} for a fold not started
        if info.get("status") in ("completed", "stopped_early") and (fold_dir / "model").is_dir():
            continue
        print(f"fold {j} of {k}", flush=True)
        lineage = {"kind": "trial", "parent": str(run.path)}
        if Checkpointer(fold_dir / "checkpoints").latest() is not None:
            train(resume=fold_dir, show_progress=show_progress)
        else:
            shutil.rmtree(fold_dir, ignore_errors=True)
            recipe = _fold_recipe(cfg, data_dir / f"fold-{j}", fold_dir, pairs)
            train(recipe, show_progress=show_progress, lineage=lineage)

    # ---- out-of-fold predictions, test metrics, the summary
    folds, oof = [], [None] * len(pool)
    for j in range(1, k + 1):
        fold_dir = run / "folds" / str(j)
        predictor = load(fold_dir)
        metrics = RunDir(fold_dir).read_json("metrics.json")
        test = predictor.evaluate(data_dir / "test.jsonl") if splits.test else {}
        folds.append({"fold": j, "run_dir": str(fold_dir), "validation": scalars(metrics.get("validation", {})),
                      "held_out": scalars(metrics.get("test", {})), "test": scalars(test)})  # fmt: skip
        index = [i for i, f in enumerate(fold_of) if f == j - 1]
        texts = [pool[i]["text"] for i in index]
        preds = predictor.predict(texts, [pool[i].get("text_pair", "") for i in index] if pairs else None)
        for i, p in zip(index, preds):
            oof[i] = p
    summary = {"k": k, "folds": folds, **mean_sd(folds), "oof": oof_metrics(cfg.task, pool, oof)}
    run.write_json("cv.json", summary)
    write_oof(run / "oof.jsonl", pool, fold_of, oof, cfg.task)
    run.update_info(status="completed", cv={s: summary["mean"][s] for s in SECTIONS} | {"oof": summary["oof"]})
    (run / "README.md").write_text(card(cfg, summary), encoding="utf-8")
    return run.path, summary


# ---------------------------------------------------------------- the parent directory


def _parent(cfg: Config, overwrite: bool) -> RunDir:
    dump = cfg.dump()
    dump["train"].pop("output_dir")
    fingerprint = hashlib.sha256(json.dumps(dump, sort_keys=True).encode()).hexdigest()[:12]
    path = Path(cfg.train.output_dir or runs_dir() / f"{cfg.task}-cv{cfg.train.folds}-{fingerprint[:8]}")
    run = RunDir(path, lineage={"kind": "cv", "parent": None})
    info = run.info
    if info and (info.get("kind") != "cv" or info.get("fingerprint") != fingerprint):
        if not overwrite:
            raise TunelabError(
                f"{path}: holds {'another cross-validation' if info.get('kind') == 'cv' else 'a run'} (another "
                "recipe). The same recipe continues its own cross-validation; choose another --output-dir, or "
                "replace it with --overwrite."
            )
        shutil.rmtree(path)
        info = {}
    elif path.exists() and any(path.iterdir()) and not info:
        raise TunelabError(f"{path}: the output directory holds other files. Choose another --output-dir.")
    path.mkdir(parents=True, exist_ok=True)
    if not info:  # (library versions: in each fold's run.json)
        run.update_info(task=cfg.task, kind="cv", parent=None, status="running", folds=cfg.train.folds,
                        fingerprint=fingerprint)  # fmt: skip
        (path / "config.yaml").write_text(cfg.to_yaml(relevant_only=True), encoding="utf-8")
    return run


def _fold_recipe(cfg: Config, data: Path, out: Path, pairs: bool) -> dict:
    """The recipe of one fold: the user's, reading the fold's files (already deduplicated and split)."""
    raw = cfg.dump()
    validation = data / "validation.jsonl"
    validation = str(validation) if validation.stat().st_size else None  # none carved: the run splits its own, if any
    raw["data"].update(train=str(data / "train.jsonl"), validation=validation,
                       test=str(data / "held_out.jsonl"), text_column="text", label_column="label",
                       text_pair_column="text_pair" if pairs else None, dedupe=False, limit=None)  # fmt: skip
    raw["train"].update(folds=None, output_dir=str(out))
    if "batch_size" not in cfg.train.model_fields_set:
        raw["train"].pop("batch_size")  # unset: each fold chooses it from its data, as a single run would
    return raw


# ---------------------------------------------------------------- examples, folds, files


def _check_enough(pool: list[dict], pool_strata, k: int, stratify) -> None:
    if len(pool) < 2 * k:
        raise TunelabError(f"train.folds: {k} folds need at least {2 * k} examples; the data has {len(pool)}.")
    if stratify == "label":
        counts: dict = {}
        for s in pool_strata:
            counts[s] = counts.get(s, 0) + 1
        rare = sorted((n, str(s)) for s, n in counts.items() if n < 2)
        if rare:
            raise TunelabError(
                f"train.folds: label {rare[0][1]!r} has a single example, so the fold holding it out would train "
                "without it. Give it at least 2 examples, or remove it."
            )


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    keep = ("text", "text_pair", "label")
    write_atomic(path, "".join(json.dumps({k: r[k] for k in keep if k in r}, ensure_ascii=False) + "\n" for r in rows))
