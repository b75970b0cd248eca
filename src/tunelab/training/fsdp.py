"""FSDP2 (distributed.strategy: fsdp): the one place that shards a model, and gathers it back after training.

`shard(model)` applies torch's `fully_shard` to every transformer block, then to the whole model: each parameter
becomes a DTensor of which every process holds 1/N. A block's forward all-gathers its weights just before it runs
and frees them after; backward reduce-scatters the gradients, averaged over the processes as DDP averages them, so
the loop's loss normalisation is the same for both. The optimizer is built after sharding: its state is sharded too.
LoRA: the frozen base is sharded like the rest, the adapter and head train. Activation checkpointing
(model.gradient_checkpointing, applied when the model loads) recomputes each block in backward, gathering it again.

Every all-gather is a collective: all processes must run the same number of forwards, so the loop and evaluation
pad a process that has fewer micro-batches with forwards that count for nothing (`forwards_to_match`).

`gathered(model)` ends it: a plain module (no DTensors, no hooks) holding the full trained weights on every process,
for what follows training unchanged — the best checkpoint restored, calibration, the test pass, model/ on rank 0.
Each process then holds the full weights once (not the gradients and optimizer state that FSDP sharded); gathering
model/ to rank 0 alone is the next step. Step checkpoints stay sharded (runs/sharded.py: each process writes its
shard, and a resume at any number of processes reshards them); `trainable_state` gathers `best/` to rank 0.
"""

from __future__ import annotations

import copy
import types
import weakref

import torch
import torch.distributed as dist

_PLAIN: "weakref.WeakKeyDictionary[torch.nn.Module, torch.nn.Module]" = weakref.WeakKeyDictionary()


def blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The model's transformer blocks: the modules whose class it names in `_no_split_modules` (transformers models
    do: BertLayer, LlamaDecoderLayer, ...), else the members of its longest list of same-class modules. A module
    that shares a weight with one outside it (BertEmbeddings, tied to a masked-LM head) stays with the root: a shard
    unit's weights are gathered only while that unit runs."""
    names = set(getattr(model, "_no_split_modules", None) or ())
    found = [m for m in model.modules() if type(m).__name__ in names and m is not model]
    if not found:
        lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len({type(c) for c in m}) == 1]
        found = list(max(lists, key=len, default=[]))
    fqns: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        fqns.setdefault(id(p), []).append(name)
    tied = [names for names in fqns.values() if len(names) > 1]
    prefix = {id(m): f"{name}." for name, m in model.named_modules()}

    def shares(block) -> bool:
        return any(len({n.startswith(prefix[id(block)]) for n in names}) > 1 for names in tied)

    return [m for m in found if any(True for _ in m.parameters()) and not shares(m)]


def shard(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`fully_shard` per transformer block, then the root, over all processes (in place; the same module returned)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    _PLAIN[model] = _skeleton(model)
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    for block in blocks(model):
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def is_sharded(model) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def forwards_to_match(n: int) -> int:
    """How many more forwards this process must run so that every process runs as many as the busiest one."""
    t = torch.tensor([n], dtype=torch.int64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t) - n


def global_norm(norm: torch.Tensor) -> torch.Tensor:
    """clip_grad_norm_ over DTensor gradients returns a DTensor: the global norm as a plain tensor."""
    return norm.full_tensor() if hasattr(norm, "full_tensor") else norm


def trainable_state(model) -> dict[str, torch.Tensor]:
    """The full trainable weights on rank 0 (CPU), {} on the others: what checkpoints.trainable_state gives for a
    plain model. A collective: every process calls it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True)
    state = get_model_state_dict(model, options=options)
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v.contiguous() for k, v in state.items() if k in names}


def gathered(model: torch.nn.Module) -> torch.nn.Module:
    """The plain model `shard` started from, now with the full trained weights, on every process (a collective).
    Tied weights stay tied."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True))
    plain = _PLAIN.pop(model)
    made: dict[int, torch.nn.Parameter] = {}
    for prefix, module in plain.named_modules(remove_duplicate=False):
        for name, p in list(module._parameters.items()):
            key = f"{prefix}.{name}" if prefix else name
            if p is None or (key not in full and id(p) not in made):
                continue
            if id(p) not in made:
                made[id(p)] = torch.nn.Parameter(full[key].detach(), requires_grad=p.requires_grad)
            module._parameters[name] = made[id(p)]
        for name, b in module._buffers.items():
            key = f"{prefix}.{name}" if prefix else name
            if b is not None and key in full:
                module._buffers[name] = full[key].detach().to(b.device)
    left = [n for n, p in plain.named_parameters() if p.is_meta]
    assert not left, f"not gathered: {left[:3]}"
    return plain.train(model.training)


def _skeleton(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of the model whose parameters are on the meta device (no memory); its buffers are real copies. A
    forward swapped in per instance (models/first_token.py, skinny.py) must be a bound method: a deep copy rebinds
    it to the copied module, where a closure would go on computing with the original's (sharded) modules."""
    closures = [type(m).__name__ for m in model.modules() if isinstance(m.__dict__.get("forward"), types.FunctionType)]
    if closures:
        raise RuntimeError(f"{closures[0]}.forward was replaced by a closure: bind it with types.MethodType instead")
    memo = {
        id(p): torch.nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
        for p in model.parameters()
    }
    return copy.deepcopy(model, memo)
