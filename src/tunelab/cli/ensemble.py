"""`tunelab ensemble`: finished runs combined into one run directory (tunelab.api.ensemble builds it)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from tunelab.cli import render


def ensemble(
    runs: List[Path] = typer.Argument(None, help="Finished run directories (members)."),
    out: Path = typer.Option(..., "--out", help="The ensemble's run directory."),
    method: str = typer.Option("mean", help="mean | weighted (by validation metric) | vote (majority label)."),
    from_folds: Optional[Path] = typer.Option(None, help="A cross-validation (train --folds K): its folds as members."),
    data: Optional[Path] = typer.Option(None, help="Labelled file to compare on (default: the members' test split)."),
    overwrite: bool = typer.Option(False, help="Replace the run already in --out."),
):
    """Combine finished runs into one ensemble run directory; predict, eval and serve then use it like any run."""
    from tunelab import api

    result = api.ensemble(runs or [], out=out, method=method, from_folds=from_folds, data=data, overwrite=overwrite)
    render.ensemble_table(result.dir, result.metrics)
