"""`GET /metrics`: Prometheus text, with prometheus_client. One registry per app, so several apps (tests) never
share counters."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.registry = CollectorRegistry()
        on = dict(registry=self.registry)
        self.requests = Counter(
            "tunelab_requests", "HTTP requests by endpoint and status.", ["endpoint", "status"], **on
        )
        self.latency = Histogram(
            "tunelab_request_seconds",
            "Request latency (to the last byte).",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            **on,
        )
        self.batch_size = Histogram(
            "tunelab_batch_size", "Items per forward pass (texts; replies decoded together).", ["model", "endpoint"],
            buckets=BATCH_BUCKETS, **on,
        )  # fmt: skip
        self.queue_depth = Gauge("tunelab_queue_depth", "Requests waiting for a batch.", ["model", "endpoint"], **on)
        self.generated = Counter("tunelab_generated_tokens", "Tokens generated.", ["model"], **on)
        self.prompt_tokens = Counter("tunelab_prompt_tokens", "Prompt and input tokens processed.", ["model"], **on)

    def text(self) -> bytes:
        return generate_latest(self.registry)
