"""Sharded checkpoints, with torch distributed checkpointing (DCP): each process writes its own shard of the trainable
weights and of the optimizer state, and a later run reads them back at any number of processes, sharded or not.

Written under distributed.strategy: fsdp, where no process holds the whole model or optimizer state. DCP keys every
tensor by its parameter name and records where each shard sits in the whole tensor (`.metadata`), so a load reshards:
two processes' shards into one plain model (one process, no process group: `dcp.load` reads every shard), into three
FSDP processes, ... Both directions go through torch's state-dict API (get_state_dict / set_state_dict), which speaks
plain and FSDP2 modules alike, so nothing here depends on how the model is wrapped.

Only trainable parameters are stored (the frozen rest is the base model), so LoRA checkpoints stay small.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Optional

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_state_dict,
    set_model_state_dict,
    set_state_dict,
)

from tunelab.errors import TunelabError

_TRAINABLE = StateDictOptions(ignore_frozen_params=True)
# strict=False: the frozen parameters are not in the checkpoint; a missing trainable one fails in dcp.load, which
# fills exactly the trainable tensors of the template
_INTO_TRAINABLE = StateDictOptions(ignore_frozen_params=True, strict=False)


def save(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Every process writes its shards into the folder `path` (a collective; rank 0 also writes the index)."""
    model_state, optimizer_state = get_state_dict(model, optimizer, options=_TRAINABLE)
    with _one_process_is_meant():
        dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=path)


def load(path: Path, model: torch.nn.Module, optimizer: Optional[torch.optim.Optimizer] = None) -> None:
    """A checkpoint `save` wrote, at any number of processes, into `model` and `optimizer` (None: the weights only),
    built as the writing run built them: the same model, method and optimizer groups. Their own state is the template
    DCP fills, resharded to how this run holds them. In one process without a process group every shard is read here."""
    model_state, optimizer_state = get_state_dict(model, optimizer or (), options=_TRAINABLE)
    state = {"model": model_state} | ({"optimizer": optimizer_state} if optimizer is not None else {})
    try:
        with _one_process_is_meant():
            dcp.load(state, checkpoint_id=path)
    except (Exception, CheckpointException) as e:  # DCP's is a BaseException, with every rank's error in its text
        if "Missing key in checkpoint" not in str(e):
            raise
        raise TunelabError(f"{path}: {_ANOTHER_MODEL}") from e
    set_state_dict(
        model,
        optimizer or (),
        model_state_dict=state["model"],
        optim_state_dict=state.get("optimizer", {}),
        options=_INTO_TRAINABLE,
    )


def load_full(
    model: torch.nn.Module,
    optimizer: Optional[torch.optim.Optimizer],
    weights: dict[str, torch.Tensor],
    optimizer_state: Optional[dict],
) -> None:
    """A single-file checkpoint (the full trainable weights by name, and `optimizer.state_dict()`, which numbers the
    parameters in the order of the optimizer's groups) into a model and optimizer of any wrapping: under FSDP each
    process keeps its shard of every full tensor."""
    if optimizer is None:
        set_model_state_dict(model, weights, options=StateDictOptions(full_state_dict=True, strict=False))
        return
    name = {id(p): n for n, p in model.named_parameters()}
    order = [name[id(p)] for group in optimizer.param_groups for p in group["params"]]
    by_name = {
        "state": {order[i]: s for i, s in optimizer_state["state"].items()},
        "param_groups": [{**g, "params": [order[i] for i in g["params"]]} for g in optimizer_state["param_groups"]],
    }
    set_state_dict(
        model,
        optimizer,
        model_state_dict=weights,
        optim_state_dict=by_name,
        options=StateDictOptions(full_state_dict=True, strict=False),
    )


@contextlib.contextmanager
def _one_process_is_meant():
    """Without a process group DCP warns that it assumes one process: here that is meant (one process resuming)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled, unavailable or uninitialized")
        yield


_ANOTHER_MODEL = (
    "the checkpoint lacks some of the model's trainable tensors, so it was written for another model or method. "
    "Resume with the run's own config.yaml (no --set of model.* or method.*), or start a new run."
)
