"""Starting `tunelab ui`: app(root), the ASGI app over a runs directory (its index built first if missing), and
serve_dashboard(...), which binds it with uvicorn (what the CLI calls). FastAPI and uvicorn are imported when called."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from tunelab.errors import TunelabError


def app(root: Path, api_key: Optional[str] = None):
    """The ASGI app over the runs directory `root` (its index is built first if there is none)."""
    from tunelab.runs import index
    from tunelab.serve.launch import require_extra

    require_extra()
    from tunelab.ui.server import make_app

    if not (Path(root) / index.NAME).exists():
        index.rebuild(Path(root))
    return make_app(Path(root), api_key)


def serve_dashboard(root: Path, host: str = "127.0.0.1", port: int = 8080, api_key: Optional[str] = None) -> None:
    """Show the runs of `root` in the browser until Ctrl-C (an API key is required off loopback)."""
    from tunelab.serve.launch import is_loopback

    if not is_loopback(host) and not api_key:
        raise TunelabError(
            f"Refusing to show the runs on {host} without an API key: anyone who reaches this machine could read them. "
            "Set --api-key KEY (or TUNELAB_API_KEY), or bind 127.0.0.1."
        )
    application = app(root, api_key)
    import uvicorn

    print(f"tunelab ui: http://{host}:{port}/{'?key=…' if api_key else ''}  (runs of {Path(root).resolve()})")
    uvicorn.run(application, host=host, port=port, log_level="warning")
