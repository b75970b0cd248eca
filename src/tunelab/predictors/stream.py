"""Predict a file of any size into a .jsonl or .csv output (`tunelab predict RUN --input F --output O`): streamed in
constant memory, resumable after a kill, splittable into shards — over any predictor that offers
`predict(texts, batch_size=...[, on_batch=...])` (a run's, an ensemble's, an export's).

Windows: rows are taken in windows of WINDOW rows aligned to absolute row numbers (window = row // WINDOW). Inside a
window the texts go to the predictor longest first (so a batch holds texts of similar length: little padding), and
the records come back in input order, written and flushed window by window. Because a window is a function of the
row numbers alone, a resumed run, or a shard, hands the predictor exactly the batches an uninterrupted run does, and
writes the same bytes.

Records: every record carries "row", the 0-based row number in the input (the same with or without --shard), then
"text" and the predictor's fields (`predict_io.prediction_rows`); a row without text gets {"row": N, "error": "..."}
and the run goes on. A CSV output has the columns row, text, the predictor's fields, error.

--resume: the output's complete records are counted (a torn last record cut off, `data/stream.py`), the window holding
the first missing row is predicted again whole, and only the missing rows are appended.

--shard K/N: the K-th of N contiguous blocks of rows, the block edges on window edges (so each shard batches as the
whole run does); the shards' outputs concatenated in K order (a CSV's header kept once) are the whole run's output.
"""

from __future__ import annotations

import inspect
import itertools
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

from tunelab.data.predict_io import prediction_rows
from tunelab.data.stream import Existing, Records, TextFile, TextRow, complete_records, output_kind
from tunelab.errors import TunelabError
from tunelab.training.progress import Bar

WINDOW = 1024  # rows sorted by length together; part of the output's identity (a resume must use the same)


@dataclass
class Done:
    begin: int  # the rows this call covers: begin <= row < end (the whole file, or one shard)
    end: int
    kept: int  # records the output held already (--resume)
    written: int  # records written by this call
    errors: int  # of which error records (rows without text)


def parse_shard(text: Optional[str]) -> Optional[tuple[int, int]]:
    """`--shard K/N` -> (K, N), 1 <= K <= N."""
    if text is None:
        return None
    k, _, n = text.partition("/")
    if not (k.strip().isdigit() and n.strip().isdigit() and 1 <= int(k) <= int(n)):
        raise TunelabError(
            f"--shard {text}: give K/N with 1 <= K <= N, e.g. --shard 2/4 for the second of four blocks of rows."
        )
    return int(k), int(n)


def shard_rows(total: int, shard: Optional[tuple[int, int]], window: int = WINDOW) -> tuple[int, int]:
    """The rows [begin, end) of shard K/N: the K-th of N contiguous blocks of whole windows."""
    if shard is None:
        return 0, total
    k, n = shard
    windows = math.ceil(total / window)
    return min((k - 1) * windows // n * window, total), min(k * windows // n * window, total)


def predict_file(
    predictor,
    source: TextFile,
    output: Path,
    batch_size: int = 64,
    resume: bool = False,
    shard: Optional[tuple[int, int]] = None,
    window: int = WINDOW,
    progress: bool = True,
    windows: Optional[Callable[[int, int], Iterator[list[dict]]]] = None,
) -> Done:
    """Predict the rows of `source` (one shard of them) into `output` (.jsonl or .csv), window by window.

    `windows(first, end)`, where given, predicts instead of `predictor`: the records of each window of rows
    first <= row < end, window after window in row order (predictors/ray_data.py: on Ray Data's actors). `predictor`
    then only answers a probe text, where a new CSV's columns must be known before any prediction."""
    output = Path(output)
    if output_kind(output) is None:
        raise TunelabError(f"{output}: predictions stream into .jsonl or .csv; other formats are written whole.")
    begin, end = shard_rows(source.count(), shard, window)
    existing = complete_records(output, begin) if resume else Existing(0, None)
    start = begin + existing.records  # the first row the output lacks
    if start > end:
        raise TunelabError(
            f"{output}: {existing.records} records, but the input{' shard' if shard else ''} has {end - begin} rows; "
            "it is the output of another input. Resume with the --input and --shard of the interrupted run."
        )
    records = Records(output, existing.columns, append=resume)
    on_batch = windows is None and "on_batch" in inspect.signature(predictor.predict).parameters
    written = errors = 0
    settled = records.kind != ".csv"  # a CSV's columns known and checked
    t0 = time.perf_counter()
    try:
        with Bar("predicting", end - begin, enabled=progress, completed=start - begin) as bar:
            done = [start - begin]  # rows of this shard in the output, or predicted in the current window

            def tick(n: int) -> None:
                done[0] += n
                rate = (done[0] - (start - begin)) / max(time.perf_counter() - t0, 1e-9)
                bar.update(min(done[0], end - begin), **{"rows/s": float(rate)})

            shown = [0]  # rows of the current window the progress bar has shown

            def here() -> Iterator[list[dict]]:  # the windows predicted in this process
                rows = source.rows(start // window * window, end) if start < end else iter(())
                for _, chunk in itertools.groupby(rows, key=lambda r: r.row // window):
                    chunk = list(chunk)
                    new = sum(r.row >= start for r in chunk)

                    def batch_done(n: int) -> None:
                        n = min(n, new - shown[0])
                        shown[0] += n
                        tick(n)

                    # a progress bar where the predictor reports its batches; else window by window
                    report = batch_done if on_batch and progress else None
                    yield _predict_window(predictor, source, chunk, batch_size, report)

            made = windows(start // window * window, end) if windows is not None and start < end else here()
            for out in made:
                settled = settled or _columns(records, out, predictor, output)
                fresh = [r for r in out if r["row"] >= start]
                records.write(fresh)
                written += len(fresh)
                errors += sum("error" in r for r in fresh)
                tick(len(fresh) - shown[0])
                shown[0] = 0
            if not settled and records.columns is None:  # nothing written (an empty shard): the header alone
                _columns(records, [], predictor, output)
                records.write([])
    finally:
        records.close()
    return Done(begin, end, existing.records, written, errors)


def _predict_window(predictor, source: TextFile, chunk: list[TextRow], batch_size: int, on_batch) -> list[dict]:
    """The records of one window, in row order; the predictor sees its texts longest first."""
    texts = [r for r in chunk if r.text is not None]
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i].text))
    kwargs = {"on_batch": on_batch} if on_batch is not None else {}
    preds = predictor.predict([texts[i].text for i in order], batch_size=batch_size, **kwargs) if texts else []
    made = {texts[i].row: r for i, r in zip(order, prediction_rows([texts[i].text for i in order], preds))}
    return [
        {"row": r.row, **made[r.row]} if r.text is not None else {"row": r.row, "error": source.missing(r)}
        for r in chunk
    ]


def _columns(records: Records, out: list[dict], predictor, output: Path) -> bool:
    """Fix a CSV's columns: row, text, the predictor's fields (from the window's first prediction, or a probe text's
    where the file is new and the window has none), error. On resume the file's header must be these. True once
    settled."""
    sample = next((r for r in out if "error" not in r), None)
    if sample is None:
        if records.columns is not None:  # the file's header, checked at the first prediction
            return False
        sample = {"row": 0, **prediction_rows(["a"], predictor.predict(["a"], batch_size=1))[0]}
    columns = [*sample, "error"]
    if records.columns is None:
        records.columns = columns
    elif records.columns != columns:
        raise TunelabError(
            f"{output}: its header ({', '.join(records.columns)}) is not what this run writes ({', '.join(columns)}); "
            "it is the output of another run. Resume with the run of the interrupted prediction, or a new --output."
        )
    return True
