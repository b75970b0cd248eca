"""The flags of `tunelab serve` that bound a request and shape batches, with their defaults."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """What one request may ask and how requests are batched (the flags of `tunelab serve`)."""

    max_batch_size: int = 32  # texts (or replies) per forward pass
    max_wait_ms: float = 10.0  # how long the first request of a batch waits for company
    max_body_mb: float = 4.0
    max_texts: int = 256  # texts per request
    max_tokens: int = 1024  # cap on max_tokens
    timeout_s: float = 120.0  # per request
    max_queue: int = 256  # waiting requests per endpoint; beyond: 503 with Retry-After
