"""tunelab's command line: parse the flags, call the API (or a task family through the registry), print.
Bad input prints one paragraph and exits 2.

commands.py   the typer apps, every command registered on them (the table of contents), and main()
train.py      train, eval, predict, export
generate.py   generate, chat
serve.py      serve
tune.py       tune
ensemble.py   ensemble
doctor.py     doctor (and doctor --labels)
runs.py       runs list/show/compare/rm/sync, ui
config.py     config, data preview
render.py     what the commands print: the rich tables and report lines, and the shared consoles
overrides.py  flags -> recipe overrides (train and doctor)

Every command imports what it calls inside its function, so `tunelab --help` loads no torch.
"""

from tunelab.cli.commands import app, main

__all__ = ["app", "main"]
