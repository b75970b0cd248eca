"""Evaluation: stream batches through the model, keep only metric sums (never all logits), reduce across processes."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from tunelab.training.distributed import all_reduce_sum
from tunelab.training.fsdp import forwards_to_match, is_sharded
from tunelab.training.precision import autocast


@torch.inference_mode()
def evaluate(
    model,
    rows: Sequence[dict],
    lengths: Sequence[int],
    spec,
    metrics,
    batch_size: int,
    precision: str,
    rank: int = 0,
    world_size: int = 1,
    on_batch: Callable[[int], None] = lambda n: None,
    also=None,
) -> dict:
    """Loss and metrics of `model` on `rows`; each process takes every world_size-th example. `also`: one more
    accumulator (update(outputs, labels, index), state, load_state) that also sees which rows each batch holds —
    the validation logits a calibration fits on, the test's error analysis."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    everyone = np.argsort(-np.asarray(lengths), kind="stable")  # long first: similar lengths batch together
    order = everyone[rank::world_size]
    # fsdp: each forward is a collective, so as many as the busiest process; agreed before the first one
    padding = forwards_to_match(-(-len(order) // batch_size)) if is_sharded(model) else 0
    loss_sum, units = 0.0, 0.0
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        batch = spec.collate([rows[int(i)] for i in index])
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast(precision, device):
            outputs, loss = spec.forward(model, batch)
        metrics.update(outputs, batch["labels"])
        if also is not None:
            also.update(outputs, batch["labels"], index)
        loss_sum += float(loss)
        units += spec.units(batch)
        on_batch(len(batch["labels"]))
    for _ in range(padding):  # forwards that count for nothing, on a stand-in example
        batch = {k: v.to(device) for k, v in spec.collate([rows[int(everyone[0])]]).items()}
        with autocast(precision, device):
            spec.forward(model, batch)
    metrics.load_state(all_reduce_sum(metrics.state()))
    if also is not None:
        also.load_state(all_reduce_sum(also.state()))
    loss_sum, units = all_reduce_sum(np.array([loss_sum, units]))
    model.train(was_training)
    return {"loss": loss_sum / max(units, 1), **metrics.compute()}
