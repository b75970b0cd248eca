"""The step sampler: which examples make each optimizer step (a pure function of seed and epoch)."""

import numpy as np

from tunelab.data.sampler import StepSampler, micro_batches


def test_step_sampler_covers_every_example_once_per_epoch_and_is_deterministic():
    lengths = list(np.random.default_rng(0).integers(3, 60, 103))
    s = StepSampler(lengths, batch_size=10, seed=3)
    batches = s.epoch(0)
    assert sorted(np.concatenate(batches).tolist()) == list(range(103))
    assert len(batches) == s.steps_per_epoch() == 11
    assert all((a == b).all() for a, b in zip(batches, s.epoch(0)))
    assert not all((a == b).all() for a, b in zip(batches, s.epoch(1)))
    # grouping: a step's examples have similar lengths (less padding than random batches)
    spread = np.mean([np.ptp(np.asarray(lengths)[b]) for b in batches])
    random_spread = np.mean(
        [np.ptp(np.asarray(lengths)[b]) for b in StepSampler(lengths, 10, 3, group_by_length=False).epoch(0)]
    )
    assert spread < random_spread / 2
    mbs = micro_batches(batches[0], 3, lengths)
    assert [len(m) for m in mbs] == [3, 3, 3, 1]


def test_longest_first_opens_the_first_epoch_with_the_longest_examples_only():
    """train.longest_first (doctor --estimate measures with it): one extra step on the batch_size longest examples
    before the first epoch's own batches; the other epochs are the plain ones."""
    lengths = list(np.random.default_rng(1).integers(3, 60, 53))
    plain, first = StepSampler(lengths, 8, 5), StepSampler(lengths, 8, 5, longest_first=True)
    opened = first.epoch(0)
    assert sorted(np.asarray(lengths)[opened[0]].tolist()) == sorted(lengths)[-8:]
    assert len(opened) == len(plain.epoch(0)) + 1
    assert all((a == b).all() for a, b in zip(opened[1:], plain.epoch(0)))
    assert all((a == b).all() for a, b in zip(first.epoch(1), plain.epoch(1))) and len(first.epoch(1)) == 7
