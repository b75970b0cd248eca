"""`tunelab runs list/show/compare/rm/sync` and `tunelab ui`: the runs on this machine, read from the run index."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from tunelab.cli import render
from tunelab.errors import TunelabError

RUNS_DIR = typer.Option(None, "--runs-dir", help="The runs directory (default: TUNELAB_RUNS_DIR or ./runs).")


def ui(
    runs_dir: Optional[Path] = RUNS_DIR,
    host: str = typer.Option("127.0.0.1", help="Address to bind; any but loopback needs an API key."),
    port: int = typer.Option(8080, help="Port."),
    api_key: Optional[str] = typer.Option(
        None, envvar="TUNELAB_API_KEY", help="Open the page once with ?key=KEY (also from TUNELAB_API_KEY)."
    ),
):
    """The runs in the browser: the runs table, each run's live curves, confusion matrix, samples and recipe,
    comparisons, studies and cross-validations."""
    from tunelab.ui import serve_dashboard

    serve_dashboard(_runs_root(runs_dir), host=host, port=port, api_key=api_key)


def runs_list(
    task: Optional[str] = typer.Option(None, help="Only this task."),
    status: Optional[str] = typer.Option(None, help="Only this status (running, completed, failed, ...)."),
    kind: Optional[str] = typer.Option(None, help="Only this kind (train, cv, ensemble, study, trial)."),
    since: Optional[str] = typer.Option(None, help="Only runs created on or after this date (2026-12-01)."),
    where: List[str] = typer.Option([], help='A metric or field test: --where "test.accuracy>0.8" (repeatable).'),
    everything: bool = typer.Option(False, "--all", help="Also the trials of studies and the folds of CVs."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
    runs_dir: Optional[Path] = RUNS_DIR,
):
    """The indexed runs, newest first."""
    from tunelab.runs.index import rows
    from tunelab.runs.query import select

    root = _runs_root(runs_dir)
    indexed = rows(root)
    found = select(indexed, task, status, kind, since, where, everything)
    if as_json:
        print(json.dumps([{k: v for k, v in r.items() if k != "info"} for r in found], indent=2, default=str))
        return
    render.runs_table(found, root)
    if not indexed:
        render.out.print(f"no index in {root} yet: `tunelab runs sync` builds it from the run directories there.")


def runs_show(
    run: str = typer.Argument(..., help="A run: its path, folder name or a unique prefix."),
    as_json: bool = typer.Option(False, "--json", help="Print run.json and metrics.json as JSON."),
    runs_dir: Optional[Path] = RUNS_DIR,
):
    """One run: what it is, how it went, its metrics and files."""
    from tunelab.runs.query import find

    r = find(run, _runs_root(runs_dir))
    if as_json:
        print(json.dumps({"path": r["path"], "run": r["info"], "metrics": r["metrics"]}, indent=2, default=str))
        return
    render.report(Path(r["path"]), r["metrics"] or {"status": r["status"], "steps": r["step"]})
    files = sorted(p.name for p in Path(r["path"]).iterdir()) if Path(r["path"]).is_dir() else []
    render.out.print(f"files: {', '.join(files)}", highlight=False)


def runs_compare(
    runs: List[str] = typer.Argument(..., help="Two or more runs (paths, names or unique prefixes)."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
    runs_dir: Optional[Path] = RUNS_DIR,
):
    """Runs side by side: their metrics, and the recipe fields where they differ."""
    from tunelab.runs.query import compare, find

    if len(runs) < 2:
        raise TunelabError("tunelab runs compare needs two or more runs.")
    root = _runs_root(runs_dir)
    c = compare([find(name, root) for name in runs])
    if as_json:
        print(json.dumps(c, indent=2, default=str))
        return
    render.comparison(c)


def runs_rm(
    runs: List[str] = typer.Argument(..., help="Runs to delete (paths, names or unique prefixes)."),
    yes: bool = typer.Option(False, "--yes", help="Really delete the run directories."),
    runs_dir: Optional[Path] = RUNS_DIR,
):
    """Delete runs: their directories and their index rows (asks for --yes)."""
    import shutil

    from tunelab.runs.index import forget
    from tunelab.runs.query import find

    root = _runs_root(runs_dir)
    found = [find(name, root) for name in runs]
    if not yes:
        for r in found:
            render.out.print(f"would delete {r['path']} ({r['task']}, {r['status']})", highlight=False)
        raise TunelabError("tunelab runs rm deletes the run directories: add --yes to do it.")
    for r in found:
        if Path(r["path"]).is_dir() and (Path(r["path"]) / "run.json").exists():  # only ever a run directory
            shutil.rmtree(r["path"])
        forget(Path(r["path"]), root)
        render.out.print(f"deleted {r['path']}", highlight=False)


def runs_sync(
    also: List[Path] = typer.Argument(None, help="Other folders whose runs to index too."),
    runs_dir: Optional[Path] = RUNS_DIR,
):
    """Rebuild the run index from the run.json files under the runs directory (and the folders given)."""
    from tunelab.runs.index import NAME, rebuild

    root = _runs_root(runs_dir)
    n = rebuild(root, tuple(also or ()))
    render.out.print(f"indexed {n} runs into {root / NAME}", highlight=False)


def _runs_root(runs_dir: Optional[Path]) -> Path:
    from tunelab.runs.index import runs_dir as default

    return runs_dir or default()
