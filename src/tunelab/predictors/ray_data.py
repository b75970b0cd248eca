"""`tunelab predict RUN --input FILE --output FILE --ray-workers N`: the streaming predict (predictors/stream.py) with
its windows predicted on Ray Data, one model per actor, N actors; the same file, in input order (byte for byte at
the same torch thread count: a matmul's float sums depend on it; each actor takes its CPUs' worth).

The input is read on this machine's node by a few read tasks (each a contiguous block of windows, one Ray Data block
per window); `map_batches` hands whole windows to the actors, each holding the run's predictor, which predict a window
exactly as one process does (longest texts first, the same batches) and return its records as JSON; the blocks come
back in order (Ray Data's preserve_order) and predict_file writes them window by window, so --resume and --shard work
as without Ray. On a cluster the run directory must be on storage every node sees.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Iterator, Optional

from tunelab.data.stream import TextFile, TextRow
from tunelab.predictors.stream import WINDOW, Done, _predict_window, predict_file
from tunelab.training.ray_train import connected, is_local, share

WHAT = "tunelab predict --ray-workers"


def predict_file_ray(
    run_dir: str | Path,
    source: TextFile,
    output: Path,
    workers: int,
    batch_size: int = 64,
    resume: bool = False,
    shard: Optional[tuple[int, int]] = None,
    window: int = WINDOW,
    progress: bool = True,
    address: Optional[str] = None,
) -> Done:
    """predict_file over `workers` Ray Data actors, each with the predictor of `run_dir`."""
    run_dir = Path(run_dir).absolute()
    with connected(address, WHAT) as ray:
        cpus = share(ray, workers, None, 0, is_local(address), WHAT)
        threads = max(1, int(cpus))

        def windows(first: int, end: int) -> Iterator[list[dict]]:
            ctx = ray.data.DataContext.get_current()
            before = ctx.execution_options.preserve_order, ctx.enable_progress_bars
            ctx.execution_options.preserve_order, ctx.enable_progress_bars = True, False
            try:
                count = math.ceil((end - first) / window)  # windows: no more actors than there are
                reads = min(count, 2 * workers)
                ds = ray.data.read_datasource(
                    _Windows(source, first, end, window), override_num_blocks=reads, num_cpus=0
                ).map_batches(
                    _Predict,
                    fn_constructor_kwargs=dict(
                        run_dir=str(run_dir), batch_size=batch_size, window=window, threads=threads
                    ),
                    batch_size=None,
                    batch_format="pyarrow",
                    concurrency=min(workers, count),
                    num_cpus=cpus,
                )
                rows = (json.loads(r["record"]) for r in ds.iter_rows())
                for _, out in itertools.groupby(rows, key=lambda r: r["row"] // window):
                    yield list(out)
            finally:
                ctx.execution_options.preserve_order, ctx.enable_progress_bars = before

        return predict_file(_Probe(run_dir), source, output, batch_size, resume, shard, window, progress, windows)


class _Probe:
    """The run's predictor, loaded in this process only where predict_file needs a probe text's fields (a new CSV
    whose first window holds no text)."""

    def __init__(self, run_dir: Path):
        self.run_dir, self._predictor = run_dir, None

    def predict(self, texts, batch_size=64):
        from tunelab.predictors import load

        self._predictor = self._predictor or load(self.run_dir)
        return self._predictor.predict(texts, batch_size=batch_size)


def _windows_datasource():
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class Windows(Datasource):
        """Rows first <= row < end of a TextFile, one block per window, read by contiguous runs of windows."""

        def __init__(self, source: TextFile, first: int, end: int, window: int):
            super().__init__()
            self.path, self.column = str(source.path), source.column
            self.first, self.end, self.window = first, end, window

        def estimate_inmemory_data_size(self):
            return None

        @property
        def supports_distributed_reads(self) -> bool:
            return False  # the file is on this node

        def get_read_tasks(self, parallelism: int, per_task_row_limit=None, data_context=None):
            w, k0, k1 = self.window, self.first // self.window, math.ceil(self.end / self.window)
            n = max(1, min(parallelism, k1 - k0))
            tasks = []
            for t in range(n):  # task t: windows k0 + (k1 - k0) * t // n up to the next task's first
                a = max(self.first, (k0 + (k1 - k0) * t // n) * w)
                b = min(self.end, (k0 + (k1 - k0) * (t + 1) // n) * w)
                if a < b:
                    meta = BlockMetadata(num_rows=b - a, size_bytes=None, exec_stats=None, input_files=(self.path,))
                    tasks.append(ReadTask(lambda a=a, b=b: self._read(a, b), meta))
            return tasks

        def _read(self, a: int, b: int):
            import pyarrow as pa

            source = TextFile(self.path, self.column)
            for _, chunk in itertools.groupby(source.rows(a, b), key=lambda r: r.row // self.window):
                chunk = list(chunk)
                errors = [None if r.text is not None else source.missing(r) for r in chunk]
                yield pa.table(
                    {
                        "row": pa.array([r.row for r in chunk], pa.int64()),
                        "text": pa.array([r.text for r in chunk], pa.string()),
                        "error": pa.array(errors, pa.string()),
                    }
                )

    return Windows


def _Windows(source: TextFile, first: int, end: int, window: int):
    return _windows_datasource()(source, first, end, window)


class _Predict:
    """One Ray Data actor: the run's predictor, loaded once; each batch's windows predicted as predict_file does."""

    def __init__(self, run_dir: str, batch_size: int, window: int, threads: int):
        import torch

        from tunelab.predictors import load

        torch.set_num_threads(threads)
        self.predictor, self.batch_size, self.window = load(run_dir), batch_size, window

    def __call__(self, batch):
        import pyarrow as pa

        rows, records = [], []
        for _, group in itertools.groupby(batch.to_pylist(), key=lambda r: r["row"] // self.window):
            group = list(group)
            errors = {r["row"]: r["error"] for r in group}
            chunk = [TextRow(r["row"], 0, r["text"]) for r in group]
            for record in _predict_window(self.predictor, _Errors(errors), chunk, self.batch_size, None):
                rows.append(record["row"])
                records.append(json.dumps(record, ensure_ascii=False))
        return pa.table({"row": pa.array(rows, pa.int64()), "record": pa.array(records, pa.string())})


class _Errors:
    """What _predict_window asks of the source: the error record of a row without text (made where it was read)."""

    def __init__(self, errors: dict):
        self.errors = errors

    def missing(self, row: TextRow) -> str:
        return self.errors[row.row]
