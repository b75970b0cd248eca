"""`tunelab tune`: a hyper-parameter search (tunelab.search runs it; its worker processes call this command too)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from tunelab.cli import render


def tune(
    recipe: Path = typer.Argument(..., help="YAML recipe with a search: block (the fields to search)."),
    trials: Optional[int] = typer.Option(None, help="Completed + pruned trials the study should reach."),
    workers: int = typer.Option(1, help="Trials at once, as separate processes (the threads divided among them)."),
    study_dir: Optional[Path] = typer.Option(None, help="Study directory (default runs/tune-<recipe name>)."),
    storage: Optional[str] = typer.Option(
        None, help="Optuna RDB URL shared by workers on many machines (postgresql://..., sqlite:///...)."
    ),
    timeout: Optional[float] = typer.Option(None, help="Seconds: no new trial starts after this."),
    new: bool = typer.Option(False, help="Start a new study (the old directory is kept beside it)."),
    quiet: bool = typer.Option(False, help="No progress bars."),
    ray: bool = typer.Option(
        False, "--ray", help="Run the --workers as Ray tasks (a local cluster, or RAY_ADDRESS's; the [ray] extra)."
    ),
    worker: Optional[int] = typer.Option(None, hidden=True),  # set by --workers for its worker processes
    threads: Optional[int] = typer.Option(None, hidden=True),
):
    """Search hyper-parameters (Optuna): trials are ordinary runs; the best keeps its model. Re-run to continue."""
    from tunelab.search import tune as run_study
    from tunelab.training.fit import Interrupted

    try:
        study = run_study(recipe, trials=trials, workers=workers, study_dir=study_dir, storage=storage, timeout=timeout,
                          new=new, show_progress=not quiet, worker=worker, threads=threads, ray=ray)  # fmt: skip
    except Interrupted as e:
        if worker is None:
            render.study_table(e.args[0])
            render.err.print(
                f"Interrupted; every finished trial is kept. Continue with: tunelab tune {recipe}", soft_wrap=True
            )
        raise typer.Exit(130)
    if worker is None and int(os.environ.get("RANK", 0)) == 0:  # the parent prints the table, not its workers
        render.study_table(study)
