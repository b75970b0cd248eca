"""The run index: one SQLite database (WAL) under the runs directory that lists every run — what `tunelab runs` and
the dashboard read to find runs without opening every folder.

It is an index, not the record: each run directory (run.json, metrics.json, metrics.jsonl) stays the source of truth,
`rebuild` (tunelab runs sync) makes the database again from the run.json files it finds, and a failure to write it
never fails a training run (a warning, once per process). Rank 0 writes it as a run starts, logs (at most once a
second) and finishes: RunDir.update_info and RunDir.log call `record` and `logged`. Several processes may write at
once: each write is one short transaction, WAL lets readers go on, and a writer waits up to 30 s for the lock.

    runs_dir()                     TUNELAB_RUNS_DIR, or ./runs
    record(path, info)             a run's row from its run.json (and metrics.json once it has one)
    rows(root)                     every row, newest first (row, children, paths: one run, its trials or folds, ids)
    rebuild(root)                  the database again from the run.json files under root
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Optional

NAME = "index.sqlite"
COLUMNS = ("path", "name", "task", "kind", "status", "parent", "created", "updated", "model", "method", "step", "loss",
           "best_metric", "best_value", "info", "metrics")  # fmt: skip
_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS runs ({', '.join(c + (' TEXT PRIMARY KEY' if c == 'path' else '') for c in COLUMNS)})"
)
_warned = False


def runs_dir() -> Path:
    return Path(os.environ.get("TUNELAB_RUNS_DIR") or "runs")


def _connect(root: Path) -> sqlite3.Connection:
    root.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(root / NAME, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(_SCHEMA)
    return conn


def _safely(write) -> None:
    """Run one index write; a failure is a warning (once), never the training run's failure."""
    global _warned
    try:
        write()
    except Exception as e:  # noqa: BLE001 — the index must never fail a run, whatever went wrong
        if not _warned:
            _warned = True
            print(f"tunelab: the run index ({runs_dir() / NAME}) was not updated: {e}. The run itself is unaffected; "
                  "`tunelab runs sync` rebuilds the index.", file=sys.stderr)  # fmt: skip


def _row(path: Path, info: dict, metrics: Optional[dict] = None) -> dict:
    best = info.get("best") or {}
    base = info.get("base_model") or {}
    return {
        "path": str(Path(path).resolve()),
        "name": Path(path).name,
        "task": info.get("task"),
        "kind": info.get("kind", "train"),
        "status": info.get("status"),
        "parent": str(Path(info["parent"]).resolve()) if info.get("parent") else None,
        "created": info.get("created"),
        "updated": info.get("updated"),
        "model": base.get("name") if isinstance(base, dict) else None,
        "method": (info.get("method") or {}).get("name") if isinstance(info.get("method"), dict) else None,
        "step": info.get("steps"),
        "loss": None,
        "best_metric": best.get("metric"),
        "best_value": best.get("value"),
        "info": json.dumps(info, default=str),
        "metrics": json.dumps(metrics) if metrics is not None else None,
    }


def _upsert(conn: sqlite3.Connection, row: dict) -> None:
    names = ", ".join(COLUMNS)
    marks = ", ".join(f":{c}" for c in COLUMNS)
    keep = ", ".join(f"{c} = COALESCE(excluded.{c}, runs.{c})" for c in COLUMNS if c != "path")
    conn.execute(f"INSERT INTO runs ({names}) VALUES ({marks}) ON CONFLICT(path) DO UPDATE SET {keep}", row)


def record(path: Path, info: dict, root: Optional[Path] = None) -> None:
    """The run's row, from its run.json (and its metrics.json, once written)."""

    def write():
        metrics_file = Path(path) / "metrics.json"
        metrics = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.exists() else None
        with closing(_connect(root or runs_dir())) as conn, conn:
            _upsert(conn, _row(path, info, metrics))

    _safely(write)


def logged(path: Path, step: int, loss: Optional[float], root: Optional[Path] = None) -> None:
    """A run's progress: its last logged step and training loss."""

    def write():
        with closing(_connect(root or runs_dir())) as conn, conn:
            conn.execute("UPDATE runs SET step = ?, loss = COALESCE(?, loss), updated = ? WHERE path = ?",
                         (step, loss, time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
                          str(Path(path).resolve())))  # fmt: skip

    _safely(write)


def moved(old: Path, new: Path, root: Optional[Path] = None) -> None:
    """A staged run (--overwrite) landed in its final folder."""

    def write():
        with closing(_connect(root or runs_dir())) as conn, conn:
            conn.execute("DELETE FROM runs WHERE path = ?", (str(Path(new).resolve()),))
            conn.execute("UPDATE runs SET path = ?, name = ? WHERE path = ?",
                         (str(Path(new).resolve()), Path(new).name, str(Path(old).resolve())))  # fmt: skip

    _safely(write)


def forget(path: Path, root: Optional[Path] = None) -> None:
    with closing(_connect(root or runs_dir())) as conn, conn:
        conn.execute("DELETE FROM runs WHERE path = ?", (str(Path(path).resolve()),))


def _select(root: Optional[Path], where: str = "", args: tuple = ()) -> list[dict]:
    root = root or runs_dir()
    if not (root / NAME).exists():
        return []
    with closing(_connect(root)) as conn:
        found = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM runs {where} ORDER BY created DESC, path", args)
        found = found.fetchall()
    out = []
    for values in found:
        row = dict(zip(COLUMNS, values))
        row["info"] = json.loads(row["info"]) if row["info"] else {}
        row["metrics"] = json.loads(row["metrics"]) if row["metrics"] else {}
        out.append(row)
    return out


def rows(root: Optional[Path] = None) -> list[dict]:
    """Every indexed run, newest first; info and metrics parsed."""
    return _select(root)


def row(path: Path, root: Optional[Path] = None) -> Optional[dict]:
    """One run's row (as rows() gives it), or None: what a page polling one run reads."""
    found = _select(root, "WHERE path = ?", (str(Path(path).resolve()),))
    return found[0] if found else None


def children(path: Path, root: Optional[Path] = None) -> list[dict]:
    """The rows whose parent is this run (a study's trials, a cross-validation's folds), newest first."""
    return _select(root, "WHERE parent = ?", (str(Path(path).resolve()),))


def paths(root: Optional[Path] = None) -> list[str]:
    """The indexed runs' paths only (nothing parsed)."""
    root = root or runs_dir()
    if not (root / NAME).exists():
        return []
    with closing(_connect(root)) as conn:
        return [p for (p,) in conn.execute("SELECT path FROM runs")]


def _read(folder: Path) -> tuple[dict, Optional[dict]]:
    """(run.json, metrics.json or None) of a run directory; ValueError where run.json is not readable JSON."""
    try:
        info = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        metrics_file = folder / "metrics.json"
        metrics = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.exists() else None
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{folder}: {e}") from e
    return info, metrics


def from_disk(folder: Path) -> dict:
    """A row as rows() gives it, read from the run directory itself (a run the index has not seen)."""
    info, metrics = _read(Path(folder))
    return _row(folder, info, metrics) | {"info": info, "metrics": metrics or {}}


def rebuild(root: Optional[Path] = None, also: tuple = ()) -> int:
    """Drop the index and make it again from every run.json under root (and under the folders in `also`); returns
    the number of runs found."""
    root = root or runs_dir()
    found = []
    for folder in (root, *map(Path, also)):
        for info_file in sorted(Path(folder).rglob("run.json")):
            try:
                found.append(_row(info_file.parent, *_read(info_file.parent)))
            except ValueError:
                continue  # a half-written or foreign file: not a run
    with closing(_connect(root)) as conn, conn:
        conn.execute("DELETE FROM runs")
        for row in found:
            _upsert(conn, row)
    return len(found)
