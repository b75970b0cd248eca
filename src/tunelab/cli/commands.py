"""The `tunelab` command: the typer apps and every command registered on them, and `main`, which turns a
TunelabError into one red paragraph and its exit code (under torchrun: the paragraph starts with the process's rank)."""

from __future__ import annotations

import os
import sys
import warnings

import typer
from rich.markup import escape

from tunelab.cli import render
from tunelab.cli.config import config_, data_preview
from tunelab.cli.doctor import doctor
from tunelab.cli.ensemble import ensemble
from tunelab.cli.generate import chat, generate
from tunelab.cli.runs import runs_compare, runs_list, runs_rm, runs_show, runs_sync, ui
from tunelab.cli.serve import serve
from tunelab.cli.train import eval_, export, predict, train
from tunelab.cli.tune import tune
from tunelab.errors import RecipeWarning, TunelabError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Fine-tune pretrained language models on your own data.",
)
data_app = typer.Typer(help="Look at the data as the model will see it.")
runs_app = typer.Typer(help="The runs on this machine: list, show, compare, remove (the run index).")

# `tunelab --help` lists the commands in this order, then the groups
app.command()(train)
app.command("eval")(eval_)
app.command()(predict)
app.command()(export)
app.command()(generate)
app.command()(chat)
app.command()(serve)
app.command()(tune)
app.command()(ensemble)
app.command()(doctor)
app.command("config")(config_)
app.command()(ui)

app.add_typer(data_app, name="data")
data_app.command("preview")(data_preview)

app.add_typer(runs_app, name="runs")
runs_app.command("list")(runs_list)
runs_app.command("show")(runs_show)
runs_app.command("compare")(runs_compare)
runs_app.command("rm")(runs_rm)
runs_app.command("sync")(runs_sync)


@app.callback()
def _root():
    pass


def main() -> None:
    # while the command runs (and only then: tests call main in-process), a RecipeWarning is one line for the user,
    # without the source line Python would print under it; any other warning is shown as before
    with warnings.catch_warnings():
        shown = warnings.showwarning

        def one_line(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, RecipeWarning):
                render.err.print(f"[yellow]warning:[/yellow] {message}", highlight=False, soft_wrap=True)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = one_line
        try:
            try:
                app()
            except Exception as e:  # a collective that failed because another process died or hung: one paragraph
                lost = None
                if "torch.distributed" in sys.modules:  # (only then: `tunelab --help` loads no torch)
                    from tunelab.training.distributed import peer_lost

                    lost = peer_lost(e)
                if lost is None:
                    raise
                raise lost from e
        except TunelabError as e:  # the message as written: its brackets ('tunelab[ray]') are not rich markup
            message = str(e)
            if int(os.environ.get("WORLD_SIZE", 1)) > 1 and not message.startswith("rank "):
                message = f"rank {os.environ.get('RANK', 0)}: {message}"  # which process says it
            render.err.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False, soft_wrap=True)
            sys.exit(e.exit_code)
