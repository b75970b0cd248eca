"""tune(): the study driver of `tunelab tune`. It reads top to bottom:

check the recipe and its search: block (every problem before the first trial)
open the study (journal file or database), refuse a changed recipe, recover trials whose process died
run trials until the study holds `trials` completed + pruned ones, in this process, K worker processes or K Ray tasks:
    ask Optuna for parameters -> train an ordinary run under DIR/trials/NNNN (run.json kind: trial)
    report the metric at each validation; the pruner may stop the trial there
    tell Optuna the best validation value; keep the best trial's model, drop the others'; rewrite the outputs
plots and a summary

study = tunelab.tune("recipes/tune_trec_frozen.yaml")
study.best_dir, study.best_value, study.best_params
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from tunelab.config import Config
from tunelab.errors import TunelabError
from tunelab.search.plan import Plan
from tunelab.search.report import plot_study, trial_dir, write_outputs
from tunelab.search.study import (
    counts,
    locked,
    open_study,
    process_identity,
    pruner_for,
    quiet_optuna,
    recover_dead,
    requeue,
    sampler_for,  # fmt: skip
)


@dataclass
class StudyResult:
    dir: Path
    metric: str
    direction: str
    counts: dict
    rows: list = field(default_factory=list)
    best_number: Optional[int] = None
    best_value: Optional[float] = None
    best_params: dict = field(default_factory=dict)
    plots: list = field(default_factory=list)
    space: list = field(default_factory=list)

    @property
    def best_dir(self) -> Optional[Path]:
        return None if self.best_number is None else trial_dir(self.dir, self.best_number)


def tune(
    recipe: Union[str, Path, dict, Config],
    *,
    trials: Optional[int] = None,
    workers: int = 1,
    study_dir: Union[str, Path, None] = None,
    storage: Optional[str] = None,
    timeout: Optional[float] = None,
    new: bool = False,
    show_progress: bool = True,
    sampler=None,
    pruner=None,
    worker: Optional[int] = None,
    threads: Optional[int] = None,
    ray: bool = False,
) -> StudyResult:
    """Search the recipe's `search.space`; returns the study's summary (the study directory holds everything).

    trials/timeout override the search block's; `storage` is an Optuna RDB URL shared by workers on many machines
    (default: a journal file in the study directory); `workers` runs K trials at once as separate processes, the
    machine's threads divided among them; with `ray` they are Ray tasks (a local Ray cluster, or the one RAY_ADDRESS
    names) on the same storage. `sampler`/`pruner` take Optuna objects in place of the recipe's names.
    `worker` and `threads` are set for the worker processes `workers` starts."""
    plan = Plan.make(recipe, study_dir, trials, timeout)
    search = plan.cfg.search
    world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    if workers < 1:
        raise TunelabError(f"--workers {workers}: give 1 or more worker processes.")
    if world > 1 and workers > 1:
        raise TunelabError(
            "--workers runs trials side by side in one machine's processes; under torchrun every process trains the "
            "same trial. Use one or the other."
        )
    if ray and world > 1:
        raise TunelabError("--ray runs trials as Ray tasks; under torchrun every process trains one trial. Use one.")
    if (workers > 1 or ray) and (sampler is not None or pruner is not None):
        raise TunelabError("sampler/pruner objects cannot be passed to worker processes: name them in search: instead.")

    # ---- the study: created on first use, the same one on every later run of the same command
    study = None
    if rank == 0:
        sampler = sampler or sampler_for(search.sampler, search.seed, worker or 0)
        pruner = pruner or pruner_for(search.pruner)
        study = open_study(plan.dir, storage, plan.base, search.model_dump(mode="json"), plan.direction, sampler,
                           pruner, new and worker is None)  # fmt: skip
        with locked(plan.dir):
            for number in recover_dead(study, plan.dir, storage is None):
                _say(f"trial {number}: its process died; marked failed, its parameters queued again")

    # ---- the trials: here, or in K worker processes sharing the study
    interrupted = False
    try:
        if ray:
            _run_ray_tasks(recipe, plan, storage, workers)
        elif workers > 1:
            _run_workers(recipe, plan, storage, workers, show_progress)
        else:
            own_threads = threads or plan.cfg.train.num_threads or _torch_threads()
            _run_trials(study, plan, own_threads, show_progress and worker is None, world, rank, storage is None)
    except KeyboardInterrupt:
        interrupted = True

    # ---- outputs: trials.csv, best.yaml, best/, run.json after every trial; plots and the summary at the end
    if rank != 0:
        return StudyResult(plan.dir, plan.metric, plan.direction, {})
    c = counts(study)
    status = "completed" if c["complete"] + c["pruned"] >= plan.trials else "interrupted"
    out = _finish(study, plan, status)
    best = out["best"]
    plots = plot_study(study, plan.dir) if worker is None and best is not None else []
    result = StudyResult(plan.dir, plan.metric, plan.direction, out["counts"], out["rows"],
                         best and best.number, best and best.value, best.params if best else {}, plots,
                         plan.space.fields)  # fmt: skip
    if interrupted:
        from tunelab.training.fit import Interrupted

        raise Interrupted(result)
    return result


def _run_trials(study, plan: Plan, threads: int, show_progress: bool, world: int, rank: int, shared_lock: bool) -> None:
    """Trials one after another until the study is full (or the timeout passes). Under torchrun rank 0 asks Optuna
    and every rank trains the parameters it broadcasts."""
    from tunelab import api
    from tunelab.training.distributed import broadcast, make_accelerator
    from tunelab.training.fit import Interrupted

    optuna = quiet_optuna()
    if world > 1:
        make_accelerator()  # the process group, for the broadcasts below
    started, failures = time.monotonic(), 0
    fixed = plan.fixed(threads)
    while True:
        # ---- the next trial: asked under the lock, so K workers stop at exactly `trials`
        trial, job, before = None, None, []
        if rank == 0 and not (plan.timeout and time.monotonic() - started > plan.timeout):
            with locked(plan.dir):
                recover_dead(study, plan.dir, shared_lock)
                c = counts(study)
                if c["complete"] + c["pruned"] + c["running"] < plan.trials:
                    trial = study.ask()
                    for key, value in process_identity().items():
                        trial.set_user_attr(key, value)
            if trial is not None:
                params = plan.space.sample(trial, plan.cfg.method.name)
                overrides = params | fixed | {"train.output_dir": str(trial_dir(plan.dir, trial.number))}
                trial.set_user_attr("overrides", overrides)
                trial.set_user_attr("metric", plan.metric)
                resume, before = _take_over(study, trial, plan.dir)
                job = (trial.number, params, overrides, resume, len(before))
        job = broadcast(job) if world > 1 else job
        if job is None:
            return
        number, params, overrides, resume, validations = job
        who = f" (rank {rank} of {world})" if world > 1 else ""
        going_on = f" (continuing trial {trial.user_attrs['retry_of']}'s run)" if resume and rank == 0 else ""
        _say(f"trial {number}{who}: {_params(params)}{going_on}")
        if rank == 0:
            for k, value in enumerate(before, 1):  # what the pruner heard of the run before it stopped
                trial.report(value, k)

        # ---- train it: an ordinary run (or the continuation of a killed one); the pruner hears each validation

        def on_validation(step: int, metrics: dict) -> bool:
            nonlocal validations
            validations += 1
            prune = False
            if rank == 0:
                trial.report(metrics[plan.metric], validations)  # indexed by validation, comparable across batch sizes
                prune = trial.should_prune()
            return broadcast(prune) if world > 1 else prune

        lineage = {"kind": "trial", "parent": str(plan.dir)}
        try:
            run = api.train(plan.base, overrides=overrides, show_progress=show_progress, on_validation=on_validation,
                            lineage=lineage, resume=resume)  # fmt: skip
        except (Interrupted, KeyboardInterrupt):
            if rank == 0:  # the next run of the command trains these parameters again
                requeue(study, number, trial.params)
                _finish(study, plan, "interrupted")
            raise KeyboardInterrupt from None
        except TunelabError as e:
            failures += 1
            if rank == 0:
                trial.set_user_attr("error", str(e)[:2000])
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                _finish(study, plan, "running")
            _say(f"trial {number} failed: {e}")
            if failures >= max(3, plan.trials):
                raise TunelabError(f"{plan.dir}: {failures} trials failed; the last: {e}") from None
            continue

        # ---- tell Optuna, keep the best model, rewrite the outputs
        if rank != 0:
            continue
        info = run.info
        value = (info.get("best") or {}).get("value")
        if info.get("status") == "pruned":
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif value is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise TunelabError(
                f"{plan.dir}: trial {number} ran no validation, so there is nothing to compare trials by. Give the "
                "search validation data (data.validation, or data.validation_fraction > 0)."
            )
        else:
            study.tell(trial, value)
        best = _finish(study, plan, "running")["best"]
        state = info.get("status")
        shown = f"{plan.metric} {value:.4f}" if value is not None else "-"
        at_best = f"best {best.value:.4f} (trial {best.number})" if best is not None else "no completed trial yet"
        _say(f"trial {number} {state} after {validations} validation(s): {shown}; {at_best}")


def _take_over(study, trial, study_dir: Path) -> tuple[Optional[str], list[float]]:
    """A re-queued trial whose earlier attempt (killed, or stopped with Ctrl-C) left a checkpoint continues that run
    instead of starting over: the run directory moves to this trial's number, and the values the pruner heard up to
    the checkpoint are reported again. Returns (run directory to resume, those values); (None, []) to start fresh."""
    from tunelab.runs.checkpoint import Checkpointer
    from tunelab.runs.rundir import RunDir

    before = trial.user_attrs.get("retry_of")
    if before is None:
        return None, []
    old, new = trial_dir(study_dir, before), trial_dir(study_dir, trial.number)
    latest = Checkpointer(old / "checkpoints").latest()
    if latest is None or not (old / "config.yaml").exists() or new.exists():
        return None, []
    step = int(latest.name.removeprefix("step-"))
    heard = next(t for t in study.get_trials(deepcopy=False) if t.number == before).intermediate_values
    validations = sum(
        1 for r in RunDir(old).history() if r.get("step", 0) <= step and any(k.startswith("val_") for k in r)
    )
    values = [heard[k] for k in range(1, validations + 1) if k in heard]
    os.replace(old, new)
    trial.set_user_attr("resumed_from_step", step)
    return str(new), values


def _finish(study, plan: Plan, status: str) -> dict:
    """The outputs rewritten under the lock: {"best", "rows", "counts"} (report.write_outputs)."""
    with locked(plan.dir):
        return write_outputs(study, plan.dir, plan.space.fields, plan.base, plan.cfg.search.keep, status)


def _run_workers(recipe, plan: Plan, storage: Optional[str], workers: int, show_progress: bool) -> None:
    """K processes, each `tunelab tune` on the same study with its share of the machine's threads (recorded in
    each trial's recipe). They die with this process (a kill -9 here leaves dead trials for the next run)."""
    if not isinstance(recipe, (str, Path)):
        raise TunelabError("--workers needs the recipe as a file (the worker processes read it).")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = max(1, plan.cfg.train.num_threads or cpus // workers)
    command = [sys.executable, "-m", "tunelab.cli", "tune", str(recipe), "--study-dir", str(plan.dir), "--trials",
               str(plan.trials), "--threads", str(threads), "--quiet"]  # fmt: skip
    command += ["--storage", storage] if storage else []
    command += ["--timeout", str(plan.timeout)] if plan.timeout else []
    _say(f"{workers} workers, {threads} thread(s) each")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    procs = [
        subprocess.Popen(command + ["--worker", str(k)], env=env, preexec_fn=_die_with_parent) for k in range(workers)
    ]
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:  # Ctrl-C reached the workers too: each saves and stops its trial
        for p in procs:
            p.wait()
        raise
    failed = [(k, c) for k, c in enumerate(codes) if c not in (0, 130)]
    if failed:
        raise TunelabError(f"{plan.dir}: worker {failed[0][0]} stopped with exit status {failed[0][1]} (see above).")
    if any(c == 130 for c in codes):
        raise KeyboardInterrupt


def _run_ray_tasks(recipe, plan: Plan, storage: Optional[str], workers: int) -> None:
    """K Ray tasks, each running trials as a worker process would (`tune(..., worker=k)`), on the study's storage: the
    journal file in the study directory (this machine, or storage every node sees), or the --storage database. Optuna
    asks and tells; Ray only places the tasks, each with its share of the cluster's CPUs."""
    from tunelab.training.ray_train import connected, environment, is_local, share

    what = "tunelab tune --ray"
    recipe = str(Path(recipe).absolute()) if isinstance(recipe, (str, Path)) else recipe
    with connected(None, what) as ray:  # RAY_ADDRESS, where set, names an existing cluster
        cpus = share(ray, workers, None, 0, is_local(None), what)
        threads = max(1, plan.cfg.train.num_threads or int(cpus))
        _say(f"{workers} Ray task(s), {threads} thread(s) each")
        task = ray.remote(num_cpus=cpus, max_retries=0)(_ray_trials)
        args = (recipe, str(plan.dir.absolute()), plan.trials, storage, plan.timeout, threads, environment())
        refs = [task.remote(*args, k) for k in range(workers)]
        try:
            failed = [k for k, code in enumerate(ray.get(refs)) if code]
        except KeyboardInterrupt:
            for ref in refs:
                ray.cancel(ref)  # a KeyboardInterrupt in the task: its trial saves and is queued again
            raise
        except ray.exceptions.RayError as e:
            raise TunelabError(f"{plan.dir}: a Ray task of the study stopped: {e}") from None
    if failed:
        raise TunelabError(f"{plan.dir}: Ray task {failed[0]} stopped (see above).")


def _ray_trials(recipe, study_dir: str, trials: int, storage, timeout, threads: int, env: dict, worker: int) -> int:
    """One Ray task of `tune --ray`: trials until the study is full, as worker `worker`; 0, or 1 where it failed."""
    from tunelab.training.fit import Interrupted

    os.environ.update(env)
    if os.path.isdir(env["TUNELAB_CWD"]):  # the recipe's relative paths, where this node has that directory
        os.chdir(env["TUNELAB_CWD"])
    try:
        tune(recipe, trials=trials, study_dir=study_dir, storage=storage, timeout=timeout, show_progress=False,
             worker=worker, threads=threads)  # fmt: skip
    except (Interrupted, KeyboardInterrupt):
        return 1
    except TunelabError as e:
        _say(f"worker {worker}: {e}")
        return 1
    return 0


def _die_with_parent() -> None:
    """Linux: the worker gets SIGKILL when the tune process dies, as a kill -9 of the process group would."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _params(params: dict) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else json.dumps(v) if not isinstance(v, str) else v


def _say(line: str) -> None:
    # one write of the whole line: print() writes the text and its newline apart, and on an unbuffered stderr (as
    # under torchrun) another rank's line could land between them
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
