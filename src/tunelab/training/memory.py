"""The peak memory of one run: the highest resident set size (RSS) sampled while it runs.

Why not `resource.getrusage(...).ru_maxrss`: it is the process's peak since it started, so a run in a process that
already ran something bigger (a tune worker's earlier trials, cross-validation's earlier folds, a test session)
would report that older peak. A daemon thread samples this process's RSS instead (psutil: Linux, macOS, Windows)
from the run's start to its end. A peak shorter than the sampling interval can slip between two samples; the
large allocations of training (weights, optimizer state, activations, a batch's logits) live far longer than that.
"""

from __future__ import annotations

import threading

import psutil

EVERY_S = 0.02


def rss_bytes() -> int:
    return psutil.Process().memory_info().rss


class PeakRSS:
    """with PeakRSS() as peak: ...   then peak.mb: the highest RSS seen inside the block, in MiB."""

    def __init__(self, every_s: float = EVERY_S):
        self.every_s = every_s
        self.peak = 0
        self.samples = 0
        self._process = psutil.Process()  # once: each psutil.Process() reads /proc to identify the process
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        self.peak = max(self.peak, self._process.memory_info().rss)
        self.samples += 1

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self._sample()

    def __enter__(self) -> "PeakRSS":
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="tunelab-peak-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()

    @property
    def mb(self) -> int:
        return round(self.peak / 2**20)
