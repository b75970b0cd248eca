"""Ray (the [ray] extra), the one place tunelab talks to it: the connection, what fits on the cluster, and
`tunelab train --ray-workers N` (distributed.ray), the same loop in a Ray Train TorchTrainer.

Ray Train starts the workers, sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT in each and opens the
torch process group (gloo on CPUs, nccl on GPUs) before our function runs; accelerate (training/distributed.py) then
finds the group open and joins it rather than opening a second. Each worker calls api.train, the entry each torchrun
process calls, so the losses are torchrun's (tests/training/test_ray.py). The run directory is the one output: Ray's
own run storage goes to a temporary folder, removed afterwards.

On a small machine nothing waits forever for resources: Ray Train's controller asks for no CPU, `cpus_per_worker`
defaults to the cluster's CPUs shared among the workers, and a request the cluster cannot hold is an error at once.
Ray Train changes each worker's directory, so the recipe's paths are made absolute first.

    tunelab train recipe.yaml --ray-workers 2
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Optional

from tunelab.errors import TunelabError

WORKER = "TUNELAB_RAY_WORKER"  # set inside a Ray Train worker: its api.train trains, it does not launch Ray again
PATH_FIELDS = ("data.train", "data.validation", "data.test", "train.output_dir")
QUIET = {"env_vars": {"RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}}


def import_ray(what: str):
    """ray, or an error saying how to install the extra."""
    try:
        import ray
    except ImportError:
        raise TunelabError(
            f"{what} needs Ray: pip install 'tunelab[ray]' (ray[train,data]; `make test` installs it)."
        ) from None
    return ray


@contextlib.contextmanager
def connected(address: Optional[str], what: str):
    """Ray for the block: the caller's connection if there is one; else the cluster at `address` ('auto',
    ray://HOST:10001), or a local cluster of this machine's CPUs when None, disconnected (and stopped) afterwards."""
    ray = import_ray(what)
    if ray.is_initialized():
        yield ray
        return
    ray.init(address=address, include_dashboard=False, logging_level="WARNING", configure_logging=True)
    try:
        yield ray
    finally:
        ray.shutdown()


def is_local(address: Optional[str]) -> bool:
    """A cluster started here (no address, no RAY_ADDRESS), which cannot grow: what it lacks never comes."""
    return address is None and not os.environ.get("RAY_ADDRESS")


def share(ray, workers: int, cpus: Optional[float], gpus: float, local: bool, what: str) -> float:
    """CPUs per worker: the asked number, or the cluster's CPUs shared among the workers (a fraction where there are
    fewer CPUs than workers). On a `local` cluster a request larger than it is refused at once rather than left
    waiting (an existing cluster may scale up)."""
    have = ray.cluster_resources()
    total_cpus, total_gpus = have.get("CPU", 0.0), have.get("GPU", 0.0)
    if cpus is None:
        if total_cpus <= 0:
            raise TunelabError(f"{what}: the Ray cluster has no CPUs. Start it with some, or set cpus_per_worker.")
        each = total_cpus / workers
        cpus = math.floor(each) if each >= 1 else math.floor(each * 100) / 100
    if local and (cpus * workers > total_cpus + 1e-9 or gpus * workers > total_gpus + 1e-9):
        raise TunelabError(
            f"{what}: {workers} workers x {cpus:g} CPUs{f' x {gpus:g} GPUs' if gpus else ''} do not fit on this Ray "
            f"cluster ({total_cpus:g} CPUs, {total_gpus:g} GPUs) and would wait forever. Ask for fewer workers, or "
            "leave distributed.ray.cpus_per_worker unset (the CPUs are then shared among the workers)."
        )
    return max(cpus, 0.01)


def absolute(raw: dict) -> dict:
    """The recipe with its file paths (data files, output directory, a local model folder) absolute: Ray Train runs
    each worker in a directory of its own."""
    for dotted in PATH_FIELDS:
        section, key = dotted.split(".")
        value = (raw.get(section) or {}).get(key)
        if value:
            raw[section][key] = str(Path(value).expanduser().absolute())
    name = (raw.get("model") or {}).get("name")
    if name and Path(name).expanduser().exists():  # a local folder or .gguf file, not a built-in name or hub id
        raw["model"]["name"] = str(Path(name).expanduser().absolute())
    return raw


def environment() -> dict:
    """What a Ray worker or task sets first: tunelab's folders (the run index, the cache) as absolute paths, and the
    directory this command ran in (TUNELAB_CWD), where a worker goes back to when its node has it."""
    from tunelab.runs import index

    env = {"TUNELAB_RUNS_DIR": str(index.runs_dir().absolute()), "TUNELAB_CWD": os.getcwd()}
    if os.environ.get("TUNELAB_CACHE"):
        env["TUNELAB_CACHE"] = str(Path(os.environ["TUNELAB_CACHE"]).absolute())
    return env


def train_on_ray(cfg, resume=None, overwrite: bool = False, show_progress: bool = True, lineage=None, overrides=None):
    """api.train's run, trained by distributed.ray.workers Ray Train workers; returns the api's Run. `overrides` go
    with `resume` (a fresh run's are in `cfg` already)."""
    from tunelab.api import Run
    from tunelab.runs import index

    rc = cfg.distributed.ray
    what = "distributed.ray (tunelab train --ray-workers)"
    ray = import_ray(what)
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    if resume is not None:
        run_dir, recipe = Path(resume).absolute(), None
    else:
        recipe = absolute(cfg.model_dump(mode="json", exclude_unset=True))
        if not recipe.get("train", {}).get("output_dir"):  # the name RunDir.create would give it, decided here
            name = f"{cfg.task}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
            recipe.setdefault("train", {})["output_dir"] = str((index.runs_dir() / name).absolute())
        run_dir = Path(recipe["train"]["output_dir"])
    job = dict(recipe=recipe, resume=resume and str(run_dir), overwrite=overwrite, lineage=lineage, env=environment(),
               show_progress=show_progress, threads=cfg.train.num_threads, overrides=resume and overrides)  # fmt: skip
    storage = tempfile.mkdtemp(prefix="tunelab-ray-")  # Ray Train's own run state: not ~/ray_results
    try:
        with connected(rc.address, what) as ray:
            cpus = share(ray, rc.workers, rc.cpus_per_worker, rc.gpus_per_worker, is_local(rc.address), what)
            resources = {"CPU": cpus} | ({"GPU": rc.gpus_per_worker} if rc.gpus_per_worker else {})
            job["threads"] = job["threads"] or max(1, int(cpus))
            # Ray Train v2's controller asks for no CPU; v1 (RAY_TRAIN_V2_ENABLED=0) has a trainer actor asking for one
            v1 = {"trainer_resources": {"CPU": 0}} if os.environ.get("RAY_TRAIN_V2_ENABLED") in ("0", "false") else {}
            scaling = ScalingConfig(
                num_workers=rc.workers, use_gpu=rc.gpus_per_worker > 0, resources_per_worker=resources, **v1
            )
            trainer = TorchTrainer(
                _worker,
                train_loop_config=job,
                scaling_config=scaling,
                # Ray opens the process group itself: distributed.timeout_s (the hang guard) goes to it here
                torch_config=TorchConfig(timeout_s=int(cfg.distributed.timeout_s)),
                # Ray Train's print patch would log what libraries print into a captured stdout (dill's hashing of
                # the data preparation disassembles functions there): our output goes to the terminal as is
                run_config=RunConfig(name=run_dir.name, storage_path=storage, worker_runtime_env=QUIET),
            )
            try:
                trainer.fit()
            except Exception as e:  # a worker's TunelabError is the user's error: say it as is
                raise _user_error(e) or e
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    import json

    final = run_dir
    metrics = json.loads((final / "metrics.json").read_text()) if (final / "metrics.json").exists() else {}
    return Run(final, metrics)


def _worker(job: dict) -> None:
    """One Ray Train worker: the process group is open (Ray Train); train as a torchrun process would."""
    import torch

    from tunelab import api

    os.environ.update(job["env"])
    os.environ[WORKER] = "1"
    if os.path.isdir(job["env"]["TUNELAB_CWD"]):  # where the command ran, if this node has it: a resumed run's
        os.chdir(job["env"]["TUNELAB_CWD"])  # config.yaml may hold relative paths
    torch.set_num_threads(job["threads"])
    rank0 = int(os.environ.get("RANK", 0)) == 0
    api.train(job["recipe"], overrides=job["overrides"], resume=job["resume"], overwrite=job["overwrite"],
              lineage=job["lineage"], show_progress=job["show_progress"] and rank0)  # fmt: skip


def _user_error(e: BaseException) -> Optional[TunelabError]:
    """The TunelabError a worker raised, found inside Ray's wrapping of it (None: another failure)."""
    seen, todo = set(), [e]
    while todo:
        x = todo.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, TunelabError):
            return x
        todo += [x.__cause__, getattr(x, "cause", None), *getattr(x, "worker_failures", {}).values()]
        todo += [v for v in vars(x).values() if isinstance(v, BaseException)] if hasattr(x, "__dict__") else []
    return None


def inside_worker() -> bool:
    return os.environ.get(WORKER) == "1"
