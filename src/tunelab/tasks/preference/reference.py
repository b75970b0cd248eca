"""The reference model's log-probabilities (DPO, IPO), with no second model in memory: computed once before training,
from the starting model itself (LoRA: the same model with its adapter switched off; full: the model before its
first step), in one batched pass with dropout off, and kept in the run directory.

The file is keyed by a fingerprint of the starting model, the encoded pairs and the precision: a resumed run reads it
back (its first step then sees exactly the numbers the interrupted run saw); a changed model or data set recomputes
it. The starting model's measurements on the test pairs (the report's base row) come from the same pass."""

from __future__ import annotations

import hashlib
from typing import Callable

import numpy as np
import torch

from tunelab.methods import adapters_off
from tunelab.tasks.preference.spec import answer_logps, collate_pairs
from tunelab.training.precision import autocast

FILE = "reference_logps.npz"


def reference_key(model_hash: str, data_fingerprint: str, precision: str) -> str:
    return hashlib.sha256(f"{model_hash}|{data_fingerprint}|{precision}".encode()).hexdigest()[:16]


@torch.inference_mode()
def reference_logps(
    model, rows: list[dict], pad_id: int, batch_size: int, precision: str, on_batch: Callable[[int], None] = None
) -> np.ndarray:
    """[len(rows), 2]: the starting model's summed log-probabilities of each pair's chosen and rejected answer."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = np.zeros((len(rows), 2))
    order = np.argsort([-r["length"] for r in rows], kind="stable")  # similar lengths together: less padding
    with adapters_off(model):
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            batch = collate_pairs([rows[i] for i in index], pad_id)
            batch = {k: v.to(device) for k, v in batch.items() if k != "reference"}
            with autocast(precision, device):
                logps = answer_logps(model, batch)
            out[index, 0] = logps.chosen.double().cpu().numpy()
            out[index, 1] = logps.rejected.double().cpu().numpy()
            if on_batch:
                on_batch(len(index))
    model.train(was_training)
    return out


def attach_reference(
    run, key: str, splits: dict[str, list[dict]], compute: Callable[[list[dict]], np.ndarray], write: bool = True
) -> bool:
    """Each row of each split gets its `reference` [chosen, rejected]: read from the run's file when its key matches,
    else computed (`compute(rows)`) and saved (by the main process: `write`). True when they were read back."""
    path = run / FILE
    saved = None
    if path.exists():
        with np.load(path) as f:
            saved = {k: f[k] for k in f.files} if str(f["key"]) == key else None
    if saved is None or any(len(saved.get(name, ())) != len(rows) for name, rows in splits.items()):
        everything = [r for rows in splits.values() for r in rows]
        values = compute(everything)
        saved, start = {}, 0
        for name, rows in splits.items():
            saved[name] = values[start : start + len(rows)]
            start += len(rows)
        if write:
            tmp = path.with_name("reference_logps.tmp.npz")
            np.savez(tmp, key=np.array(key), **saved)
            tmp.replace(path)  # atomic: a killed run never leaves half a file
        read_back = False
    else:
        read_back = True
    for name, rows in splits.items():
        for r, ref in zip(rows, saved[name]):
            r["reference"] = [float(ref[0]), float(ref[1])]
    return read_back
