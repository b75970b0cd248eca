"""Process setup through accelerate: one process on a laptop, several under torchrun or `accelerate launch`, and
which strategy they share the training with (distributed.strategy: DDP through accelerate, FSDP2 in fsdp.py)."""

from __future__ import annotations

import os
import random
import re
from datetime import timedelta
from typing import Optional

import numpy as np
import torch
import torch.distributed as dist

from tunelab.errors import TunelabError

# what an `accelerate launch` config said about FSDP, kept when make_accelerator takes the flag away from accelerate
_ACCELERATE_FSDP: dict[str, bool] = {}
# distributed.timeout_s as the process group got it, for the message when a collective times out
_TIMEOUT_S: dict[str, float] = {}


def make_accelerator(num_threads=None, device: str = "auto", timeout_s: float = 300):
    """The processes on the device devices.pick_device chooses (train.device: auto = cuda, else mps, else cpu).
    `timeout_s` (distributed.timeout_s): how long a collective waits for the other processes before it fails."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, InitProcessGroupKwargs

    from tunelab.training.devices import pick_device

    quiet_libraries()
    # tunelab wraps the model itself (distributed.strategy, training/fsdp.py): accelerate's own FSDP plugin, which an
    # `accelerate launch` FSDP config switches on, would wrap it a second time. Its wish is kept for strategy auto.
    _ACCELERATE_FSDP.setdefault("fsdp", os.environ.get("ACCELERATE_USE_FSDP", "false").lower() in ("true", "1"))
    os.environ.pop("ACCELERATE_USE_FSDP", None)
    if num_threads:
        torch.set_num_threads(num_threads)
    chosen = pick_device(device)
    # every trainable parameter gets a gradient each step: no extra unused-parameter search pass
    ddp = DistributedDataParallelKwargs(find_unused_parameters=False)
    # cpu=False lets accelerate take the GPU (cuda:<local rank>, or mps); mixed_precision="no" because the precision
    # is tunelab's alone (train.precision: autocast and the fp16 gradient scaler in the loop), whatever an
    # `accelerate launch --mixed_precision` or accelerate config would add on top
    timeout = InitProcessGroupKwargs(timeout=timedelta(seconds=timeout_s))
    accelerator = Accelerator(cpu=chosen == "cpu", mixed_precision="no", kwargs_handlers=[ddp, timeout])
    if dist.is_available() and dist.is_initialized():
        # again on a group made before (a search's trials), and where accelerate drops 600 s as its own default
        dist.distributed_c10d._set_pg_timeout(timedelta(seconds=timeout_s))
        _TIMEOUT_S["s"] = timeout_s
    return accelerator


def resolve_strategy(requested: str, world_size: int, accelerate_fsdp: bool | None = None) -> str:
    """distributed.strategy -> "ddp" or "fsdp". auto: fsdp where an `accelerate launch` config asks for FSDP, else ddp
    (one process: nothing is wrapped either way). An explicit ddp or fsdp wins over an accelerate config."""
    if accelerate_fsdp is None:
        accelerate_fsdp = _ACCELERATE_FSDP.get("fsdp", os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true")
    strategy = requested if requested != "auto" else ("fsdp" if accelerate_fsdp and world_size > 1 else "ddp")
    if strategy == "fsdp" and world_size < 2:
        raise TunelabError(
            "distributed.strategy: fsdp shards the model over several processes, and this is one process, so there "
            "is nothing to shard. Launch it on several: `torchrun --nproc_per_node 2 -m tunelab.cli train RECIPE "
            "--set distributed.strategy=fsdp` (or `accelerate launch` with an FSDP config), or set "
            "distributed.strategy: auto to train in one process."
        )
    return strategy


def launcher() -> Optional[str]:
    """What started this run's processes, for run.json: "ray" (Ray Train workers), "torchrun" (torch's elastic
    agent: torchrun, `srun torchrun`, `accelerate launch` on several processes), or None (one plain process)."""
    from tunelab.training.ray_train import WORKER

    if os.environ.get(WORKER) == "1":
        return "ray"
    return "torchrun" if "TORCHELASTIC_RUN_ID" in os.environ else None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))


def all_reduce_sum(values):
    """Sum a number, numpy array or tensor over all processes (identity in a single process)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    t = torch.as_tensor(
        np.asarray(values, dtype=np.float64) if not torch.is_tensor(values) else values, dtype=torch.float64
    ).clone()
    dist.all_reduce(t)
    if torch.is_tensor(values):
        return t.to(values.dtype)
    return t.numpy() if isinstance(values, np.ndarray) else float(t)


def quiet_libraries() -> None:
    """Our own progress bar and report only: no transformers load reports or shard-writing bars."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def broadcast(obj):
    """The main process's `obj`, on every process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class PeerLost(TunelabError):
    """A collective failed: another process of the run died or stopped answering. Not the user's input: exit 1."""

    exit_code = 1


def peer_lost(error: BaseException) -> PeerLost | None:
    """`error` as one paragraph when it is a collective that could not complete because another process died (its
    connection closed: gloo, NCCL) or did not answer within distributed.timeout_s; None for any other error or in
    one process. Names this rank, and the other one where there is only one other."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    chain, e = [], error
    while e is not None and len(chain) < 5:
        chain.append(e)
        e = e.__cause__ or e.__context__
    text = " ".join(str(e) for e in chain)
    collective = any(isinstance(e, dist.DistError) for e in chain) or re.search(r"gloo|nccl|c10d", text, re.I)
    timed_out = re.search(r"timed? ?out|timeout", text, re.I)
    if not collective or not (timed_out or re.search(r"by peer|connection (closed|reset)|broken pipe", text, re.I)):
        return None  # another failure of a collective (a mismatch, memory) or no collective at all
    rank, world = dist.get_rank(), dist.get_world_size()
    other = f"rank {1 - rank} (the other process)" if world == 2 else "another process"
    where = f" at {m.group(1)}" if (m := re.search(r"\[([^\]\s/]+)\]:\d+", text)) else ""
    after = (
        "Look at that process's output for why (torchrun prints the first failure on its node, with the rank and "
        "exit code: killed, out of memory, an error), fix it, then continue with `--resume RUN_DIR`, launched as "
        "before on every node."
    )
    if timed_out:
        seconds = _TIMEOUT_S.get("s", 300)
        return PeerLost(
            f"rank {rank}: no answer from {other} within distributed.timeout_s ({seconds:g} s): it hung, died or "
            f"fell that far behind, so this process stops too. {after} A step, validation or checkpoint that "
            "legitimately keeps one process busy longer needs a larger distributed.timeout_s."
        )
    return PeerLost(f"rank {rank}: lost the connection to {other}{where}: it stopped, so this one stops too. {after}")
