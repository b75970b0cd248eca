"""The Optuna side of a search: where the study lives, its sampler and pruner, the lock that keeps trial counts exact,
and the recovery of trials whose process died.

Storage: Optuna's journal file in the study directory by default (several local processes append to it under a file
lock; no SQLite "database is locked"), or an Optuna RDB URL (`postgresql://...`, `mysql+pymysql://...`,
`sqlite:///...`) that workers on many machines share.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from tunelab.errors import TunelabError

JOURNAL = "journal.log"


def quiet_optuna():
    """Optuna, imported (a clear error where the [tune] extra is missing) and quiet."""
    import warnings

    try:
        import optuna
    except ImportError:
        raise TunelabError("tunelab tune needs its extra: pip install 'tunelab[tune]' (make installs it).") from None

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own trial lines, not Optuna's per-trial INFO logs
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def storage_for(study_dir: Path, url: Optional[str]):
    optuna = quiet_optuna()
    if url:
        return optuna.storages.RDBStorage(url)
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    study_dir.mkdir(parents=True, exist_ok=True)
    path = str(study_dir / JOURNAL)
    return optuna.storages.JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))


def sampler_for(name: str, seed: int, worker: int = 0):
    """tpe | random | gp, seeded; worker k of a parallel study draws with seed + k (else the workers would propose the
    same first trials). TPE with a constant liar: running trials count as bad, so parallel workers spread out."""
    optuna = quiet_optuna()
    seed = seed + worker
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def pruner_for(name: str):
    """median: stop a trial whose value at validation k is worse than the median of earlier trials at k (after 4
    finished trials); hyperband: successive halving over the validations; none."""
    optuna = quiet_optuna()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    return optuna.pruners.NopPruner()


PER_INVOCATION = ("trials", "timeout")  # search fields an invocation may change without changing the study


def fingerprint(recipe: dict, search: dict) -> str:
    """What makes two invocations the same study: the base recipe and the search block (less PER_INVOCATION)."""
    blob = json.dumps({"recipe": recipe, "search": search}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def open_study(study_dir: Path, storage_url: Optional[str], recipe: dict, search: dict, direction: str, sampler,
               pruner, new: bool):  # fmt: skip
    """The study of this directory, created on first use; a changed recipe or search block is refused (--new starts
    over: the old directory is kept beside it, a new study name is used in a database)."""
    optuna = quiet_optuna()
    study_dir = Path(study_dir)
    meta_path = study_dir / "study.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if new and meta:
        if not storage_url:  # journal: the whole directory moves aside
            aside = study_dir.with_name(f"{study_dir.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
            os.replace(study_dir, aside)
            meta = {}
        else:
            meta["study_name"] = f"{study_dir.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    name = meta.get("study_name", study_dir.name)
    storage = storage_for(study_dir, storage_url)
    search = {k: v for k, v in search.items() if k not in PER_INVOCATION}
    fp = fingerprint(recipe, search)
    study = optuna.create_study(
        storage=storage, study_name=name, direction=direction, sampler=sampler, pruner=pruner, load_if_exists=True
    )
    before = study.user_attrs.get("fingerprint")
    if before is None:
        study.set_user_attr("fingerprint", fp)
        study.set_user_attr("recipe", recipe)
        study.set_user_attr("search", search)
    elif before != fp:
        changed = _changed({"recipe": study.user_attrs.get("recipe", {}), "search": study.user_attrs.get("search", {})},
                           {"recipe": recipe, "search": search})  # fmt: skip
        raise TunelabError(
            f"{study_dir}: this study was started with another recipe or search block (changed: "
            f"{', '.join(changed[:8]) or 'the recipe'}). The same command continues the same study; to start a new "
            "one run with --new (the old study is kept beside it), or give another --study-dir."
        )
    study_dir.mkdir(parents=True, exist_ok=True)
    meta_path.write_text(json.dumps({"study_name": name, "storage": storage_url or JOURNAL}, indent=2) + "\n")
    return study


def _changed(a, b, prefix="") -> list[str]:
    distribution = prefix.startswith("search.space.") and prefix != "search.space."  # compared whole
    if isinstance(a, dict) and isinstance(b, dict) and not distribution:
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += _changed(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


@contextmanager
def locked(study_dir: Path):
    """One process at a time counts the trials and asks for the next (so a study stops at exactly `trials`), and
    one at a time sweeps models and writes the outputs. Local processes only: across machines sharing a database,
    each stops asking once the count is reached, so a study may end a trial or two past it."""
    from filelock import FileLock

    with FileLock(str(Path(study_dir) / ".lock")):
        yield


# ---------------------------------------------------------------- who is running a trial, and is it still alive


def process_identity() -> dict:
    """What a running trial records of its process: host, pid, and the pid's start time (a reused pid is not us)."""
    import psutil

    return {"host": socket.gethostname(), "pid": os.getpid(), "pid_started": psutil.Process().create_time()}


def is_dead(attrs: dict) -> bool:
    """The trial's process is gone (known only for trials of this host; another host's are left to that host)."""
    import psutil

    if attrs.get("host") != socket.gethostname() or "pid" not in attrs:
        return False
    try:
        process = psutil.Process(attrs["pid"])
        if process.status() == psutil.STATUS_ZOMBIE:  # killed, not yet reaped (a container's init may never reap it)
            return True
        return abs(process.create_time() - attrs.get("pid_started", 0)) > 1
    except psutil.NoSuchProcess:
        return True


def recover_dead(study, study_dir: Path, shared_lock: bool = True) -> list[int]:
    """Mark trials whose process died (kill -9, power loss) failed, and queue their parameters again: a killed study
    re-runs them and keeps every finished trial. Returns the recovered trial numbers.

    Called under the study lock. A running trial that never recorded its process was asked by a worker killed before
    it could: with `shared_lock` (the study's own journal: every worker asks and records under this lock) that is
    certain at once; with a database shared by machines, whose workers do not share the lock, after a minute."""
    optuna = quiet_optuna()
    from tunelab.runs.rundir import RunDir

    recovered = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if "pid" in t.user_attrs:
            if not is_dead(t.user_attrs):
                continue
        elif not shared_lock and (t.datetime_start is None or time.time() - t.datetime_start.timestamp() < 60):
            continue
        requeue(study, t.number, t.params)
        run = Path(study_dir) / "trials" / f"{t.number:04d}"
        if (run / "run.json").exists():
            RunDir(run).update_info(status="failed", error=f"its process (pid {t.user_attrs.get('pid')}) died")
        recovered.append(t.number)
    return recovered


def requeue(study, number: int, params: dict) -> None:
    """Fail a trial that did not finish and queue its parameters again (the retry names it in `retry_of`)."""
    optuna = quiet_optuna()
    study.tell(number, state=optuna.trial.TrialState.FAIL)
    study.enqueue_trial(params, user_attrs={"retry_of": number})


def counts(study) -> dict:
    """Trials by state: complete, pruned, running, waiting, fail."""
    c = {"complete": 0, "pruned": 0, "running": 0, "waiting": 0, "fail": 0}
    for t in study.get_trials(deepcopy=False):
        c[t.state.name.lower()] += 1
    return c
