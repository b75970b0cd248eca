"""Atomic checkpoints: written to a temporary folder, renamed into place, then `latest` is switched.

A kill at any moment leaves `latest` pointing at a complete checkpoint. Only trainable parameters are
stored (the frozen rest is the base model), so LoRA checkpoints are small.

Two layouts, and a run resumes from either at any number of processes and either strategy:
- whole (one process, DDP): model.safetensors (rank 0's copy of the trainable weights), the optimizer in trainer.pt;
- sharded (distributed.strategy: fsdp, where no process holds the whole model): sharded/, written by every process
  with torch distributed checkpointing (runs/sharded.py), which reshards on load.
Both keep trainer.pt (the loop, scheduler, strategy, number of processes) and one rng-rank{r}.pt per process. A
process the checkpoint has no RNG file for (a resume with more processes) keeps its generators as train.seed seeded
them at start: deterministic, but not the random stream an uninterrupted run with that many processes would have
drawn (dropout masks differ; without dropout the losses are the same).
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from tunelab.errors import TunelabError


def _dcp():
    """runs/sharded.py, imported when a sharded checkpoint is written or read: torch distributed checkpointing pulls in
    DTensor, torch.fx and sympy (about 1.1 s of start-up on a 2-core Zen 3), which a one-process run never uses."""
    from tunelab.runs import sharded

    return sharded


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable(model: torch.nn.Module, path: Path) -> None:
    state = _complete(load_file(str(path)), model, path)  # tensors on the file's memory map: not a second copy
    params = dict(model.named_parameters())
    with torch.no_grad():
        for n, t in state.items():
            params[n].copy_(t)


def _complete(state: dict, model: torch.nn.Module, path: Path) -> dict:
    """`state`, if it holds every trainable tensor of `model`; else the error that says it is another model's."""
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in state]
    if missing:
        raise TunelabError(
            f"{path}: the checkpoint lacks {len(missing)} of the model's trainable tensors (e.g. {missing[0]}), so it "
            "was written "
            "for another model or method. Resume with the run's own config.yaml (no --set of model.* or method.*), "
            "or start a new run."
        )
    return state


def restore_best(model: torch.nn.Module, checkpoints: Path) -> bool:
    """Load the best checkpoint's trainable weights into `model`, if the run kept one (validation ran)."""
    best = Checkpointer(checkpoints).best()
    if best is not None:
        load_trainable(model, best)
    return best is not None


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class Checkpointer:
    """checkpoints/step-000120/{model.safetensors or sharded/, trainer.pt, rng-rank*.pt}, checkpoints/latest,
    checkpoints/best/ (model.safetensors, whole in both layouts)."""

    def __init__(self, root: Path, rank: int = 0, world_size: int = 1, gather=None, sharded: bool = False):
        """gather(model): the full trainable weights on rank 0, called on every process (a collective: FSDP's
        shards); None: rank 0 reads them from its own whole model. sharded: the model is sharded over the processes
        (fsdp); its step checkpoints are written by every process, and a whole one is loaded shard by shard."""
        self.root, self.rank, self.world_size, self.gather = Path(root), rank, world_size, gather
        self.sharded = sharded

    def _weights(self, model) -> dict:
        if self.gather is not None:
            return self.gather(model)
        return trainable_state(model) if self.rank == 0 else {}

    def save(self, step: int, model, trainer_state: dict, barrier=lambda: None, optimizer=None) -> Path:
        """A collective. Sharded: `optimizer`'s state goes into sharded/ with the weights (trainer_state has none)."""
        final = self.root / f"step-{step:07d}"
        tmp = self.root / f".tmp-step-{step:07d}"
        weights = None if self.sharded else self._weights(model)
        if self.rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            if weights is not None:
                save_file(weights, str(tmp / "model.safetensors"))
            torch.save(trainer_state, tmp / "trainer.pt")
        barrier()
        if self.sharded:
            _dcp().save(tmp / "sharded", model, optimizer)
        torch.save(rng_state(), tmp / f"rng-rank{self.rank}.pt")
        barrier()
        if self.rank == 0:
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            write_atomic(self.root / "latest", final.name)
            for old in self.root.glob("step-*"):
                if old != final:
                    shutil.rmtree(old, ignore_errors=True)
        barrier()
        return final

    def save_best(self, model) -> None:
        weights = self._weights(model)
        if self.rank != 0:
            return
        tmp = self.root / ".tmp-best"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file(weights, str(tmp / "model.safetensors"))
        old = self.root / ".old-best"
        if (self.root / "best").exists():
            os.replace(self.root / "best", old)
        os.replace(tmp, self.root / "best")
        shutil.rmtree(old, ignore_errors=True)

    def latest(self) -> Optional[Path]:
        pointer = self.root / "latest"
        if not pointer.exists():
            return None
        path = self.root / pointer.read_text().strip()
        return path if path.exists() else None

    def best(self) -> Optional[Path]:
        for name in ("best", ".old-best"):  # .old-best: killed in the middle of switching
            if (self.root / name / "model.safetensors").exists():
                return self.root / name / "model.safetensors"
        return None

    def load(self, path: Path, model, optimizer=None) -> dict:
        """Restore the weights, the optimizer (a torch one, not a wrapper; None: the weights only) and this rank's RNG,
        whichever layout and number of processes wrote the checkpoint; return the trainer state (scheduler, loop)."""
        state = torch.load(path / "trainer.pt", weights_only=False)
        if (path / "sharded").is_dir():
            _dcp().load(path / "sharded", model, optimizer)
        elif self.sharded:
            weights = _complete(load_file(str(path / "model.safetensors")), model, path / "model.safetensors")
            _dcp().load_full(model, optimizer, weights, state.get("optimizer"))
        else:
            load_trainable(model, path / "model.safetensors")
            if optimizer is not None:
                optimizer.load_state_dict(state["optimizer"])
        rng_file = path / f"rng-rank{self.rank}.pt"
        if rng_file.exists():
            set_rng_state(torch.load(rng_file, weights_only=False))
        return state
