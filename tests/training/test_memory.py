"""peak_rss_mb: the highest RSS of the run itself. A planted allocation inside the block is seen; one made and freed
before it is not (ru_maxrss, the process's peak, would carry it: tune workers, folds and test sessions run many)."""

from __future__ import annotations

import resource
import time

import numpy as np

import tunelab
from tests.conftest import tiny_recipe
from tunelab.training.memory import PeakRSS, rss_bytes

MB = 2**20


def _hold(mb: int, seconds: float = 0.3) -> None:
    block = np.ones(mb * MB, dtype=np.uint8)  # ones, not zeros: every page is touched, so it is resident
    time.sleep(seconds)
    del block


def test_a_planted_allocation_is_the_peak_and_is_gone_from_the_next_block():
    base = rss_bytes()
    with PeakRSS() as peak:
        _hold(300)
    assert peak.peak - base >= 280 * MB
    with PeakRSS() as after:
        time.sleep(0.1)
    assert after.peak < peak.peak - 250 * MB  # freed memory is not carried into the next run's peak


def test_run_json_records_the_run_peak_not_the_process_peak(tiny_bert, sentiment_csv, tmp_path):
    _hold(600, 0.05)  # an earlier, bigger peak in the same process (as an earlier trial's)
    process_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    run = tunelab.train(tiny_recipe(tiny_bert, sentiment_csv, tmp_path / "run", train={"max_steps": 4}),
                        show_progress=False)  # fmt: skip
    peak = run.info["peak_rss_mb"]
    assert isinstance(peak, int) and rss_bytes() / MB * 0.5 < peak < process_peak_mb - 400
