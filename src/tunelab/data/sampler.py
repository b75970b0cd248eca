"""Which examples make up each optimizer step, and how a step splits into micro-batches.

The order is a pure function of (seed, epoch): the sampler's whole state is (epoch, step in epoch), which
the checkpoint stores, so a resumed run sees exactly the batches the uninterrupted run would have.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class StepSampler:
    lengths: list[int]  # tokens per example
    batch_size: int  # examples per optimizer step, across all processes
    seed: int
    group_by_length: bool = True
    mega_batch: int = 50  # length grouping sorts within windows of this many batches: random across, similar within
    longest_first: bool = False  # epoch 0 opens with an extra batch of the longest examples (the step of peak memory)

    def steps_per_epoch(self) -> int:
        n = len(self.lengths)
        return -(-n // self.batch_size)  # the last, smaller batch included

    def epoch(self, epoch: int) -> list[np.ndarray]:
        """The list of global batches (arrays of example indices) for one epoch."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.lengths))
        if self.group_by_length:
            lengths = np.asarray(self.lengths)
            window = self.batch_size * self.mega_batch
            order = np.concatenate(
                [w[np.argsort(-lengths[w], kind="stable")] for w in np.split(order, range(window, len(order), window))]
            )
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.group_by_length:  # shuffle batch order so lengths don't trend within an epoch
            batches = [batches[i] for i in rng.permutation(len(batches))]
        if self.longest_first and epoch == 0 and batches:
            batches.insert(0, np.argsort(-np.asarray(self.lengths), kind="stable")[: self.batch_size])
        return batches


def shard(batch: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """This process's share of a global batch."""
    return batch[rank::world_size]


def micro_batches(indices: np.ndarray, micro_batch_size: int, lengths=None) -> list[np.ndarray]:
    """Split one step's examples into forward passes; sorted by length so each pads little."""
    if lengths is not None:
        indices = indices[np.argsort(-np.asarray(lengths)[indices], kind="stable")]
    return [indices[i : i + micro_batch_size] for i in range(0, len(indices), micro_batch_size)]
