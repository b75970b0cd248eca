"""Starting `tunelab serve`: the [serve] extra checked, the ASGI app made, and bound with uvicorn (serve_runs, what the
CLI calls); is_loopback() decides when an API key is required (the dashboard, tunelab ui, asks it too). Nothing here
imports FastAPI, uvicorn or torch until it is called."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Optional, Union

from tunelab.errors import TunelabError
from tunelab.serve.limits import Limits


def require_extra() -> None:
    """A clear error, not an ImportError, where the [serve] extra is not installed."""
    try:
        import fastapi  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise TunelabError("tunelab serve needs its extra: pip install 'tunelab[serve]' (make installs it).") from None


def app(runs, api_key: Optional[str] = None, limits=None):
    """The ASGI app serving `runs`: a list of run directories (named by their folder) or {name: directory}."""
    require_extra()
    from tunelab.serve.server import app as make_app

    return make_app(runs, api_key=api_key, limits=limits or Limits())


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve_runs(
    runs: Union[dict[str, Path], list[Path]],
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: Optional[str] = None,
    limits=None,
) -> None:
    """Serve until SIGTERM or Ctrl-C; both stop accepting, finish the requests in flight, then exit."""
    if not is_loopback(host) and not api_key:
        raise TunelabError(
            f"Refusing to serve on {host} without an API key: anyone who reaches this machine could use the models. "
            "Set --api-key KEY (or TUNELAB_API_KEY), or bind 127.0.0.1."
        )
    application = app(runs, api_key=api_key, limits=limits)
    import uvicorn

    timeout = application.state.limits.timeout_s
    uvicorn.run(application, host=host, port=port, log_level="info", timeout_graceful_shutdown=int(timeout) + 5)
