"""`tunelab config` and `tunelab data preview`: a recipe resolved, and its data as the model will see it."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from tunelab.cli import render


def config_(
    defaults: bool = typer.Option(False, "--defaults", help="Print the default recipe, every field documented."),
    recipe: Optional[Path] = typer.Argument(None, help="A recipe to validate and print resolved."),
):
    """Print the documented default recipe (--defaults), or validate a recipe and print it resolved."""
    from tunelab.config import defaults_yaml, load_config

    if defaults or recipe is None:
        print(defaults_yaml(), end="")
    else:
        print(load_config(recipe).to_yaml(relevant_only=True), end="")  # the fields of its task and method


def data_preview(
    recipe: Optional[Path] = typer.Argument(None, help="YAML recipe whose data to show (default: the demo recipe)."),
    n: int = typer.Option(2, "-n", help="Examples to show."),
    set_: List[str] = typer.Option([], "--set", help="Override recipe fields: --set data.train_on=all"),
):
    """Show training examples rendered as the model sees them; for sft the trained tokens are highlighted."""
    from tunelab.config import DEMO_RECIPE, load_config, parse_set
    from tunelab.tasks.preview import marks_trained_tokens, preview_examples

    cfg = load_config(recipe or DEMO_RECIPE, parse_set(set_))
    plain_text = not render.out.is_terminal  # piped: no colours, so the trained tokens are marked with «»
    marked = ""
    if marks_trained_tokens(cfg):
        marked = "  (trained tokens in «»)" if plain_text else "  (trained tokens in green)"
    for i, text in enumerate(preview_examples(cfg, n, markup=not plain_text)):
        render.out.rule(f"example {i + 1}" + marked)
        if plain_text:
            print(text)
        else:
            render.out.print(text, highlight=False)
