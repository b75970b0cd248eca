"""Process setup through accelerate: one process on a laptop, several under torchrun or `accelerate launch`, and
which strategy they share the training with (distributed.strategy: DDP through accelerate, FSDP2 in fsdp.py)."""

from __future__ import annotations

import os
import random

import numpy as np
import torch
import torch.distributed as dist

from tunelab.errors import TunelabError

# what an `accelerate launch` config said about FSDP, kept when make_accelerator takes the flag away from accelerate
_ACCELERATE_FSDP: dict[str, bool] = {}


def make_accelerator(num_threads=None, device: str = "auto"):
    """The processes on the device devices.pick_device chooses (train.device: auto = cuda, else mps, else cpu)."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

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
    return Accelerator(cpu=chosen == "cpu", mixed_precision="no", kwargs_handlers=[ddp])


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
