"""The task endpoints over HTTP: what `tunelab predict` returns, whatever the batching; /metrics shows the batches."""

from __future__ import annotations

import asyncio
import json
import re

import httpx2
import numpy as np
import pytest

import tunelab
from tests.conftest import make_sentences, make_sentiment
from tests.serve.conftest import KEY

AUTH = {"Authorization": f"Bearer {KEY}"}


def post(server, path, body):
    return httpx2.post(f"{server.url}{path}", json=body, headers=AUTH, timeout=60)


def test_classify_returns_what_predict_returns(server, served_runs):
    texts = [r["text"] for r in make_sentiment(8, seed=5)]
    expected = [{"text": t, **p} for t, p in zip(texts, tunelab.load(served_runs["sentiment"]).predict(texts))]
    got = post(server, "/v1/classify", {"model": "sentiment", "input": texts}).json()["data"]
    assert [g["label"] for g in got] == [e["label"] for e in expected]
    for g, e in zip(got, expected):
        assert g.keys() == e.keys() and g["text"] == e["text"]
        np.testing.assert_allclose(list(g["scores"].values()), list(e["scores"].values()), atol=1e-5)
    one = post(server, "/v1/classify", {"model": "sentiment", "input": texts[0]}).json()["data"]
    assert len(one) == 1 and one[0]["label"] == expected[0]["label"]


def test_entities_returns_the_spans_predict_returns(server, served_runs):
    texts = [" ".join(r["tokens"]) for r in make_sentences(6, seed=3)]
    expected = tunelab.load(served_runs["people"]).predict(texts)
    got = post(server, "/v1/entities", {"model": "people", "input": texts}).json()["data"]
    assert [g["text"] for g in got] == texts
    assert [[(e["type"], e["start"], e["end"]) for e in g["entities"]] for g in got] == [
        [(e["type"], e["start"], e["end"]) for e in spans] for spans in expected
    ]


def _histogram(metrics: str, model: str, endpoint: str) -> dict[float, float]:
    pattern = rf'tunelab_batch_size_bucket\{{endpoint="{endpoint}",le="([^"]+)",model="{model}"\}} (\S+)'
    return {float(le): float(n) for le, n in re.findall(pattern, metrics)}


def test_64_concurrent_requests_equal_sequential_ones_and_are_batched(server, served_runs):
    texts = [r["text"] for r in make_sentiment(64, seed=11)]
    sequential = [post(server, "/v1/classify", {"model": "sentiment", "input": t}).json()["data"][0] for t in texts]
    before = _histogram(httpx2.get(f"{server.url}/metrics", headers=AUTH).text, "sentiment", "classify")

    async def concurrently():
        async with httpx2.AsyncClient(base_url=server.url, headers=AUTH, timeout=60) as client:
            answers = await asyncio.gather(
                *(client.post("/v1/classify", json={"model": "sentiment", "input": t}) for t in texts)
            )
        return [a.json()["data"][0] for a in answers]

    together = asyncio.run(concurrently())
    assert [t["label"] for t in together] == [s["label"] for s in sequential]
    np.testing.assert_allclose([t["score"] for t in together], [s["score"] for s in sequential], atol=1e-5)
    after = _histogram(httpx2.get(f"{server.url}/metrics", headers=AUTH).text, "sentiment", "classify")
    singles = after[1.0] - before.get(1.0, 0)  # batches of exactly one text
    batches = after[float("inf")] - before.get(float("inf"), 0)
    assert batches - singles >= 1, "no batch held more than one request"
    assert batches < 64


def test_concurrent_chats_decode_together_and_give_each_its_own_answer(server, served_runs):
    generator = tunelab.load(served_runs["chatbot"])
    questions = [f"Question number {i}: what is {i} plus {i}?" for i in range(8)]
    expected = [generator.generate(q, max_new_tokens=16)[0] for q in questions]
    before = _histogram(httpx2.get(f"{server.url}/metrics", headers=AUTH).text, "chatbot", "generate")

    async def concurrently():
        async with httpx2.AsyncClient(base_url=server.url, headers=AUTH, timeout=60) as client:
            body = lambda q: {"model": "chatbot", "messages": [{"role": "user", "content": q}], "max_tokens": 16}  # noqa: E731
            answers = await asyncio.gather(*(client.post("/v1/chat/completions", json=body(q)) for q in questions))
        return [a.json()["choices"][0]["message"]["content"] for a in answers]

    assert asyncio.run(concurrently()) == expected
    after = _histogram(httpx2.get(f"{server.url}/metrics", headers=AUTH).text, "chatbot", "generate")
    steps = after[float("inf")] - before.get(float("inf"), 0)  # one observation per decoding step: its rows
    shared = steps - (after[1.0] - before.get(1.0, 0))
    assert shared > 0 and steps < 8 * 16  # one at a time would take 8 x 16 steps of one row


def test_metrics_count_requests_by_endpoint_and_status(server):
    post(server, "/v1/classify", {"model": "sentiment", "input": "fine"})
    post(server, "/v1/classify", {"model": "nope", "input": "fine"})
    text = httpx2.get(f"{server.url}/metrics", headers=AUTH).text
    assert re.search(r'tunelab_requests_total\{endpoint="/v1/classify",status="200"\} [1-9]', text)
    assert re.search(r'tunelab_requests_total\{endpoint="/v1/classify",status="404"\} [1-9]', text)
    for name in ("tunelab_request_seconds_bucket", "tunelab_queue_depth", "tunelab_generated_tokens_total"):
        assert name in text


@pytest.mark.parametrize("path", ["/docs", "/openapi.json"])
def test_the_api_documents_itself(server, path):
    assert httpx2.get(f"{server.url}{path}", headers=AUTH).status_code == 200


def test_a_chat_arriving_mid_decode_joins_the_running_batch_and_is_answered_as_alone(served_runs):
    """Continuous batching: the late request starts before the long one ends, and both get their own greedy text."""
    import threading
    import time

    from tests.serve.conftest import LiveServer
    from tunelab.serve import app

    generator = tunelab.load(served_runs["chatbot"])
    long_q, short_q = "Tell me a long story about a dragon", "hi"
    expected = {q: generator.generate(q, max_new_tokens=n)[0] for q, n in ((long_q, 200), (short_q, 8))}
    live = LiveServer(app({"bot": served_runs["chatbot"]}))

    def body(question: str, tokens: int) -> dict:
        message = {"role": "user", "content": question}
        return {"model": "bot", "messages": [message], "max_tokens": tokens, "stop": ["\u2603"]}

    try:
        decoding, done = threading.Event(), {}

        def ask_long():
            with httpx2.stream("POST", f"{live.url}/v1/chat/completions", json={**body(long_q, 200), "stream": True},
                               timeout=60) as answer:  # fmt: skip
                pieces = []
                for line in answer.iter_lines():
                    if line.startswith("data: {"):
                        decoding.set()  # the long reply is being decoded
                        pieces.append(json.loads(line[6:])["choices"][0]["delta"].get("content") or "")
            done[long_q] = (time.monotonic(), "".join(pieces))

        long_one = threading.Thread(target=ask_long)
        long_one.start()
        assert decoding.wait(timeout=60)
        short = httpx2.post(f"{live.url}/v1/chat/completions", json=body(short_q, 8), timeout=60).json()
        done[short_q] = (time.monotonic(), short["choices"][0]["message"]["content"])
        long_one.join()
        assert done[short_q][0] < done[long_q][0], "the late short request waited for the long one"
        assert {q: text for q, (_, text) in done.items()} == expected
    finally:
        live.stop()
