"""Atomic checkpoints: written to a temporary folder, renamed into place, then `latest` is switched.

A kill at any moment leaves `latest` pointing at a complete checkpoint. Only trainable parameters are
stored (the frozen rest is the base model), so LoRA checkpoints are small.
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


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable(model: torch.nn.Module, path: Path) -> None:
    state = load_file(str(path))
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in state]
    if missing:
        raise TunelabError(
            f"{path}: the checkpoint lacks {len(missing)} of the model's trainable tensors (e.g. {missing[0]}), so it "
            "was written "
            "for another model or method. Resume with the run's own config.yaml (no --set of model.* or method.*), "
            "or start a new run."
        )
    with torch.no_grad():
        for n, t in state.items():
            params[n].copy_(t)


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
    """checkpoints/step-000120/{model.safetensors, trainer.pt, rng-rank0.pt}, checkpoints/latest, checkpoints/best/."""

    def __init__(self, root: Path, rank: int = 0, world_size: int = 1, gather=None):
        """gather(model): the full trainable weights on rank 0, called on every process (a collective: FSDP's
        shards); None: rank 0 reads them from its own whole model."""
        self.root, self.rank, self.world_size, self.gather = Path(root), rank, world_size, gather

    def _weights(self, model) -> dict:
        if self.gather is not None:
            return self.gather(model)
        return trainable_state(model) if self.rank == 0 else {}

    def save(self, step: int, model, trainer_state: dict, barrier=lambda: None) -> Path:
        final = self.root / f"step-{step:07d}"
        tmp = self.root / f".tmp-step-{step:07d}"
        weights = self._weights(model)
        if self.rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            save_file(weights, str(tmp / "model.safetensors"))
            torch.save(trainer_state, tmp / "trainer.pt")
        barrier()
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

    def strategy(self, path: Path) -> str:
        """The distributed.strategy the checkpoint was written under (older checkpoints: ddp)."""
        return torch.load(path / "trainer.pt", weights_only=False).get("strategy", "ddp")

    def load(self, path: Path, model) -> dict:
        """Restore the weights and this rank's RNG; return the trainer state (optimizer, scheduler, loop)."""
        load_trainable(model, path / "model.safetensors")
        rng_file = path / f"rng-rank{self.rank}.pt"
        if rng_file.exists():
            set_rng_state(torch.load(rng_file, weights_only=False))
        return torch.load(path / "trainer.pt", weights_only=False)
