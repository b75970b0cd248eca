"""A rich progress bar for anything long: step count, loss, learning rate, real tokens/s and ETA."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def console() -> Console:
    return Console(stderr=False)


class Bar:
    def __init__(self, description: str, total: int, enabled: bool = True, completed: int = 0):
        self.enabled = enabled
        if not enabled:
            return
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console(),
            transient=False,
            disable=not enabled,
            refresh_per_second=4 if sys.stdout.isatty() else 0.2,
        )
        self.task = self.progress.add_task(description, total=total, completed=completed, info="")
        self.progress.start()

    def update(self, completed: int, **info) -> None:
        if self.enabled:
            text = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in info.items())
            self.progress.update(self.task, completed=completed, info=text)

    def print(self, text: str) -> None:
        if self.enabled:
            self.progress.console.print(text)

    def close(self) -> None:
        if self.enabled:
            self.progress.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
