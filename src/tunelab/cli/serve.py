"""`tunelab serve`: runs over HTTP (the server is tunelab.serve; this reads the flags into names and limits)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from tunelab.errors import TunelabError
from tunelab.serve.limits import Limits


def serve(
    runs: List[Path] = typer.Argument(None, help="Run directories; each is served under its folder's name."),
    name: List[str] = typer.Option([], "--name", help="NAME=RUN: serve RUN under NAME (repeatable)."),
    host: str = typer.Option("127.0.0.1", help="Address to bind; any but loopback needs an API key."),
    port: int = typer.Option(8000, help="Port."),
    api_key: Optional[str] = typer.Option(
        None, envvar="TUNELAB_API_KEY", help="Required as 'Authorization: Bearer KEY' (also from TUNELAB_API_KEY)."
    ),
    max_batch_size: int = typer.Option(
        Limits.max_batch_size, help="Texts (or replies decoded together) per forward pass."
    ),
    max_wait_ms: float = typer.Option(
        Limits.max_wait_ms, help="How long a request waits for others to share its batch."
    ),
    max_body_mb: float = typer.Option(Limits.max_body_mb, help="Largest request body."),
    max_texts: int = typer.Option(Limits.max_texts, help="Texts (or prompts) per request."),
    max_tokens: int = typer.Option(Limits.max_tokens, help="Cap on a request's max_tokens."),
    timeout_s: float = typer.Option(Limits.timeout_s, help="Longest a request may take."),
    max_queue: int = typer.Option(
        Limits.max_queue, help="Requests waiting per endpoint; beyond it: 503 with Retry-After."
    ),
):
    """Serve runs over HTTP: OpenAI-compatible chat, completions and embeddings, /v1/classify, /v1/entities."""
    from tunelab import serve as serving

    serving.require_extra()
    from tunelab.serve.runs import name_runs

    named = name_runs(runs or [], _named(name))
    if not named:
        raise TunelabError("Give the runs to serve: tunelab serve runs/RUN [runs/OTHER ...].")
    limits = Limits(max_batch_size, max_wait_ms, max_body_mb, max_texts, max_tokens, timeout_s, max_queue)
    serving.serve_runs(named, host=host, port=port, api_key=api_key, limits=limits)


def _named(items: list[str]) -> dict[str, Path]:
    """{NAME: RUN} of the --name NAME=RUN flags, each name once."""
    named: dict[str, Path] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise TunelabError(f"--name {item}: write it NAME=RUN, e.g. --name sentiment=runs/classify-movie_reviews.")
        if key in named:
            raise TunelabError(f"--name {key} is given twice: each name serves one run.")
        named[key] = Path(value)
    return named
