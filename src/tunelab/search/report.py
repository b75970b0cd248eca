"""What a study leaves in its directory, rewritten after every trial (so a killed study loses nothing):

trials.csv    a row per trial: number, state, value, params.<field>..., validations, steps, seconds, test_value, run_dir
best.yaml     a complete recipe (threads and precision included) that `tunelab train` reproduces the best trial with
best          a link to the best trial's run directory, model included
plots/        optimisation history, parameter importances, slices, parallel coordinates (at the end of an invocation)
run.json      kind "study": status, counts, the best trial
"""

from __future__ import annotations

import csv
import os
import shutil
import warnings
from pathlib import Path

import yaml

from tunelab.config import load_config
from tunelab.runs.rundir import RunDir
from tunelab.search.study import counts, quiet_optuna

HEAVY = ("model", "adapter", "checkpoints")  # what keep: best removes from every trial but the best


def trial_dir(study_dir: Path, number: int) -> Path:
    return Path(study_dir) / "trials" / f"{number:04d}"


def best_trial(study):
    optuna = quiet_optuna()
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return study.best_trial if done else None


def write_outputs(study, study_dir: Path, space_fields: list[str], recipe: dict, keep: str, status: str) -> dict:
    """trials.csv, best.yaml, the best link, run.json; with keep: best, the heavy folders of every other trial go."""
    study_dir = Path(study_dir)
    best = best_trial(study)
    if keep == "best":
        trials = study.get_trials(deepcopy=False)
        # a failed trial queued again keeps its checkpoints: its retry continues from them
        queued = {t.user_attrs.get("retry_of") for t in trials if t.state.name in ("WAITING", "RUNNING")}
        for t in trials:
            if (best is None or t.number != best.number) and t.state.name != "RUNNING" and t.number not in queued:
                for name in HEAVY:
                    shutil.rmtree(trial_dir(study_dir, t.number) / name, ignore_errors=True)
    rows = trial_rows(study, study_dir, space_fields)
    _write_csv(study_dir / "trials.csv", rows, space_fields)
    if best is not None:
        _link(study_dir / "best", trial_dir(Path(), best.number))  # relative: the study directory can move
        (study_dir / "best.yaml").write_text(best_recipe(recipe, best, study_dir), encoding="utf-8")
    c = counts(study)
    RunDir(study_dir).update_info(
        kind="study",
        parent=None,
        status=status,
        study_name=study.study_name,
        direction=study.direction.name.lower(),
        trials=c,
        best=None if best is None else {"number": best.number, "value": best.value, "params": best.params,
                                        "run_dir": str(trial_dir(study_dir, best.number))},
    )  # fmt: skip
    return {"best": best, "rows": rows, "counts": c}


def trial_rows(study, study_dir: Path, space_fields: list[str]) -> list[dict]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        run = trial_dir(study_dir, t.number)
        info = RunDir(run).info  # {} for a trial whose run has not started (or moved on with its retry)
        metric = (info.get("best") or {}).get("metric")
        test = RunDir(run).read_json("metrics.json").get("test", {})
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else None
        rows.append(
            {"number": t.number, "state": t.state.name, "value": t.value}
            | {f"params.{f}": t.params.get(f) for f in space_fields}
            | {"validations": len(t.intermediate_values), "steps": info.get("steps"),
               "seconds": None if seconds is None else round(seconds, 1), "test_value": test.get(metric),
               "run_dir": str(run) if run.exists() else ""}
        )  # fmt: skip
    return rows


def best_recipe(recipe: dict, best, study_dir: Path) -> str:
    """The base recipe with the best trial's parameters and fixed fields (threads, precision, metric): `tunelab train
    best.yaml` trains the best trial again. Built from the study itself, so any machine sharing it can write it."""
    cfg = load_config(recipe, {**best.user_attrs.get("overrides", best.params), "train.output_dir": None})
    head = (
        f"# The best trial of {study_dir} (trial {best.number}: {best.user_attrs.get('metric', 'value')} "
        f"{best.value:.6g}).\n# Train it again with: tunelab train {study_dir / 'best.yaml'}\n"
    )
    return head + yaml.safe_dump(cfg.dump(), sort_keys=False)


def plot_study(study, study_dir: Path) -> list[Path]:
    """PNG plots with optuna.visualization.matplotlib; a plot the study cannot draw yet (too few trials) is skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    quiet_optuna()
    from optuna.visualization import matplotlib as vis

    out = Path(study_dir) / "plots"
    out.mkdir(exist_ok=True)
    written = []
    plots = {
        "history": vis.plot_optimization_history,
        "importances": vis.plot_param_importances,
        "slice": vis.plot_slice,
        "parallel_coordinate": vis.plot_parallel_coordinate,
    }
    with warnings.catch_warnings():
        # "too few trials to compute importances", "Axes not compatible with tight_layout" (a colour bar): harmless
        warnings.simplefilter("ignore")
        for name, plot in plots.items():
            try:
                axes = plot(study)
            except (ValueError, RuntimeError, ZeroDivisionError):  # a plot this study cannot draw yet
                continue
            figure = np.atleast_1d(axes).flat[0].figure
            figure.set_size_inches(max(figure.get_size_inches()[0], 7), max(figure.get_size_inches()[1], 4.5))
            figure.tight_layout()
            figure.savefig(out / f"{name}.png", dpi=110)
            plt.close(figure)
            written.append(out / f"{name}.png")
    return written


def _write_csv(path: Path, rows: list[dict], space_fields: list[str]) -> None:
    fields = ["number", "state", "value", *(f"params.{f}" for f in space_fields), "validations", "steps", "seconds",
              "test_value", "run_dir"]  # fmt: skip
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def _link(link: Path, target: Path) -> None:
    """A relative symlink, swapped in atomically (a reader never sees it missing)."""
    tmp = link.with_name(link.name + ".tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(target, target_is_directory=True)
    os.replace(tmp, link)
