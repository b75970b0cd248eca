"""Bad requests: each one answered 4xx with a JSON body in OpenAI's error shape, and the server healthy after."""

from __future__ import annotations

import httpx2
import pytest

from tests.serve.conftest import KEY

AUTH = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
CHAT = {"model": "chatbot", "messages": [{"role": "user", "content": "hi"}]}

BAD = [
    ("not JSON", "/v1/classify", b"{not json", AUTH, 400),
    ("a JSON list", "/v1/classify", b"[1, 2]", AUTH, 400),
    ("input a number", "/v1/classify", {"model": "sentiment", "input": 3}, AUTH, 400),
    ("input missing", "/v1/classify", {"model": "sentiment"}, AUTH, 400),
    ("empty input list", "/v1/classify", {"model": "sentiment", "input": []}, AUTH, 400),
    ("empty text", "/v1/entities", {"model": "people", "input": ["a text", "  "]}, AUTH, 400),
    ("too many texts", "/v1/classify", {"model": "sentiment", "input": ["x"] * 9}, AUTH, 400),
    ("unknown model", "/v1/classify", {"model": "nope", "input": "x"}, AUTH, 404),
    ("task endpoint of another task", "/v1/entities", {"model": "sentiment", "input": "x"}, AUTH, 400),
    ("embeddings of a chat run", "/v1/embeddings", {"model": "chatbot", "input": "x"}, AUTH, 400),
    ("token arrays as input", "/v1/embeddings", {"model": "sentiment", "input": [[1, 2, 3]]}, AUTH, 400),
    ("no messages", "/v1/chat/completions", {"model": "chatbot", "messages": []}, AUTH, 400),
    ("a tool message", "/v1/chat/completions", {**CHAT, "messages": [{"role": "tool", "content": "x"}]}, AUTH, 400),
    ("temperature a string", "/v1/chat/completions", {**CHAT, "temperature": "hot"}, AUTH, 400),
    ("negative max_tokens", "/v1/chat/completions", {**CHAT, "max_tokens": -1}, AUTH, 400),
    ("max_tokens over the cap", "/v1/chat/completions", {**CHAT, "max_tokens": 10**6}, AUTH, 400),
    ("n = 3", "/v1/chat/completions", {**CHAT, "n": 3}, AUTH, 400),
    ("five stop strings", "/v1/chat/completions", {**CHAT, "stop": list("abcde")}, AUTH, 400),
    ("a prompt over the context", "/v1/completions", {"model": "chatbot", "prompt": "word " * 400}, AUTH, 400),
    ("missing key", "/v1/classify", {"model": "sentiment", "input": "x"}, {"Content-Type": "application/json"}, 401),
    ("wrong key", "/v1/classify", {"model": "sentiment", "input": "x"}, {**AUTH, "Authorization": "Bearer no"}, 401),
    ("basic", "/v1/classify", {"model": "sentiment", "input": "x"}, {**AUTH, "Authorization": "Basic " + KEY}, 401),
    ("no such path", "/v1/nothing", {}, AUTH, 404),
    ("GET on a POST endpoint", "/v1/classify", None, AUTH, 405),
]  # fmt: skip


@pytest.mark.parametrize("what, path, body, headers, status", BAD, ids=[b[0] for b in BAD])
def test_a_bad_request_is_4xx_json_in_openai_shape(server, what, path, body, headers, status):
    if body is None:
        answer = httpx2.get(f"{server.url}{path}", headers=headers)
    elif isinstance(body, bytes):
        answer = httpx2.post(f"{server.url}{path}", content=body, headers=headers)
    else:
        answer = httpx2.post(f"{server.url}{path}", json=body, headers=headers)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    error = answer.json()["error"]
    assert error["message"] and error["type"] and error["code"]
    assert "Traceback" not in error["message"]
    assert httpx2.get(f"{server.url}/health").status_code == 200


def test_an_oversize_body_is_413_whether_or_not_it_says_its_length(served_runs):
    from tests.serve.conftest import LiveServer
    from tunelab.serve import Limits, app

    live = LiveServer(app({"sentiment": served_runs["sentiment"]}, limits=Limits(max_body_mb=0.01)))
    try:
        big = b'{"model": "sentiment", "input": "' + b"x" * 20_000 + b'"}'
        answer = httpx2.post(f"{live.url}/v1/classify", content=big, headers={"Content-Type": "application/json"})
        assert answer.status_code == 413 and answer.json()["error"]["code"] == "body_too_large"

        def chunks():  # no Content-Length: sent chunked
            for _ in range(20):
                yield b"x" * 1000

        answer = httpx2.post(f"{live.url}/v1/classify", content=chunks(), headers={"Content-Type": "application/json"})
        assert answer.status_code == 413
        assert httpx2.post(f"{live.url}/v1/classify", json={"model": "sentiment", "input": "ok"}).status_code == 200
    finally:
        live.stop()


def test_a_full_queue_is_503_with_retry_after(served_runs):
    import asyncio

    from tests.serve.conftest import LiveServer
    from tunelab.serve import Limits, app

    live = LiveServer(app({"chatbot": served_runs["chatbot"]}, limits=Limits(max_batch_size=1, max_queue=1)))
    try:

        async def flood():
            async with httpx2.AsyncClient(base_url=live.url, timeout=60) as client:
                body = {**CHAT, "max_tokens": 64, "stop": ["\u2603"]}
                return await asyncio.gather(*(client.post("/v1/chat/completions", json=body) for _ in range(6)))

        answers = asyncio.run(flood())
        busy = [a for a in answers if a.status_code == 503]
        assert busy and all(
            a.headers["retry-after"] == "1" and a.json()["error"]["code"] == "server_busy" for a in busy
        )
        assert any(a.status_code == 200 for a in answers)
    finally:
        live.stop()
