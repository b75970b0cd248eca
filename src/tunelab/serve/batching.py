"""Dynamic batching: requests that arrive together share one forward pass.

Each served endpoint of a run has one Batcher: a queue and one worker thread. The thread takes the first waiting job,
gathers more for up to `max_wait_ms` (or until `max_batch_size` items), and hands them all to `work` at once. While
it computes, new requests wait in the queue, so under load batches fill up by themselves. Torch releases the GIL in
its kernels, so the event loop keeps accepting requests meanwhile. Written by hand (60 lines) because the serving
libraries that batch (litserve, ray serve) bring their own server, process model and API shape.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional


class Busy(Exception):
    """The queue is full: the client should retry later (503 with Retry-After)."""


@dataclass
class End:
    """The last item of a job's pieces: its result, or the error that ended it."""

    result: Any = None
    error: Optional[BaseException] = None


class Job:
    """One request's share of a batch. The worker thread answers it through the event loop that awaits it:
    `finish(result)` (or `fail(error)`) once, and for streamed generation `send(piece)` any number of times before.
    A reader awaits `future`, or reads `pieces` up to an End."""

    def __init__(self, payload: Any, size: int = 1):
        self.payload, self.size = payload, size
        self.loop = asyncio.get_running_loop()
        self.future: asyncio.Future = self.loop.create_future()
        self.pieces: asyncio.Queue = asyncio.Queue()
        self.cancelled = False  # set by the server when the client is gone or the request timed out
        self.head: tuple[int, ...] = ()  # generation: the prompt's first tokens, whose KV cache may be reused

    def send(self, piece: Any) -> None:
        self.loop.call_soon_threadsafe(self.pieces.put_nowait, piece)

    def finish(self, result: Any) -> None:
        self.send(End(result))
        self.loop.call_soon_threadsafe(_resolve, self.future, result, None)

    def fail(self, error: BaseException) -> None:
        self.send(End(error=error))
        self.loop.call_soon_threadsafe(_resolve, self.future, None, error)


def _resolve(future: asyncio.Future, result: Any, error: Optional[BaseException]) -> None:
    if future.done():  # already answered (a timeout gave up on it)
        return
    future.set_exception(error) if error is not None else future.set_result(result)


class Batcher:
    def __init__(
        self,
        name: str,
        work: Callable[[list[Job]], None],
        max_batch_size: int = 32,
        max_wait_ms: float = 10.0,
        max_queue: int = 256,
        on_batch: Optional[Callable[[int], None]] = None,
    ):
        self.name, self.work, self.on_batch = name, work, on_batch
        self.max_batch_size, self.max_wait, self.max_queue = max_batch_size, max_wait_ms / 1000, max_queue
        self.jobs: queue.Queue = queue.Queue()
        self.held: Optional[Job] = None  # a job that did not fit the last batch: it starts the next one
        self.thread = threading.Thread(target=self._run, name=f"batcher-{name}", daemon=True)
        self.thread.start()

    def depth(self) -> int:
        """Requests waiting for a batch."""
        return self.jobs.qsize()

    def submit(self, job: Job) -> Job:
        if self.jobs.qsize() >= self.max_queue:
            raise Busy(f"{self.max_queue} requests are already waiting for {self.name}")
        self.jobs.put(job)
        return job

    def take(self, room: int) -> list[Job]:
        """Up to `room` waiting jobs, without waiting (continuous batching: they join a batch already running)."""
        taken: list[Job] = []
        while len(taken) < room:
            job, self.held = self.held, None
            if job is None:
                try:
                    job = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:  # closing
                    self.jobs.put(None)
                    break
            if not job.cancelled:
                taken.append(job)
        return taken

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join(timeout=30)

    def _gather(self) -> Optional[list[Job]]:
        first = self.held or self.jobs.get()
        self.held = None
        if first is None:
            return None
        batch, size = [first], first.size
        deadline = time.monotonic() + self.max_wait
        while size < self.max_batch_size:
            try:
                job = self.jobs.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is None:  # closing: this batch is the last
                self.jobs.put(None)
                break
            if size + job.size > self.max_batch_size:
                self.held = job  # it starts the next batch
                break
            batch.append(job)
            size += job.size
        return batch

    def _run(self) -> None:
        while (batch := self._gather()) is not None:
            batch = [job for job in batch if not job.cancelled]
            if not batch:
                continue
            if self.on_batch is not None:
                self.on_batch(sum(job.size for job in batch))
            try:
                self.work(batch)
            except Exception as error:  # one bad batch answers its requests with the error; the thread lives on
                for job in batch:
                    job.fail(error)
