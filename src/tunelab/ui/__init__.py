"""`tunelab ui`: the runs of a runs directory in the browser — a table of runs, each run's curves growing while it
trains, its confusion matrix, per-class table, sample answers and recipe, and comparisons — on the serving stack
(FastAPI + uvicorn), loopback by default.

    launch.py  app(root): the ASGI app; serve_dashboard(...): binds it with uvicorn (what the CLI calls)
    server.py  the app's routes: the runs API the page reads, the API-key gate, the static files
    static/    the page (plain JavaScript, no build step)
"""

from tunelab.ui.launch import app, serve_dashboard

__all__ = ["app", "serve_dashboard"]
