"""`tunelab serve`: trained runs behind an HTTP API (FastAPI + uvicorn, the `[serve]` extra).

launch.py    app(runs): the ASGI app; serve_runs(...): binds it with uvicorn (what the CLI calls); require_extra,
             is_loopback (an API key is required off loopback). Imports FastAPI/uvicorn only when called.
server.py    the endpoints: OpenAI's chat/completions/embeddings/models, /v1/classify, /v1/entities, health, metrics;
             the gate every request passes (API key, body limit, counting); errors in OpenAI's shape
runs.py      a served run: its registry predictor, one Batcher per endpoint
limits.py    the Limits: batch size and wait, body, texts, tokens, time, queue
batching.py  dynamic batching: concurrent requests gathered into one forward pass on a worker thread
schemas.py   the request bodies (pydantic); unsupported OpenAI fields refused by name
metrics.py   Prometheus counters and histograms

This face imports only launch.py and limits.py (no FastAPI, no torch): the CLI reads Limits' defaults at start-up.
"""

from tunelab.serve.launch import app, is_loopback, require_extra, serve_runs
from tunelab.serve.limits import Limits

__all__ = ["app", "serve_runs", "Limits", "is_loopback", "require_extra"]
