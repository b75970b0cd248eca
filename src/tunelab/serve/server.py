"""The HTTP API: OpenAI's chat, completions, embeddings and models endpoints, tunelab's task endpoints, health and
metrics. Every answer is JSON; every error is OpenAI's error shape `{"error": {"message", "type", "code"}}`."""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Optional, Union

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from tunelab.models.decode import Reply
from tunelab.serve.batching import Busy, End, Job
from tunelab.serve.limits import Limits
from tunelab.serve.metrics import Metrics
from tunelab.serve.runs import ServedRun, name_runs
from tunelab.serve.schemas import ChatRequest, CompletionRequest, EmbeddingsRequest, Sampling, TextsRequest

DEFAULT_MAX_TOKENS = 128  # as `tunelab generate`
OPEN_PATHS = {"/health"}  # answered without the API key


class ApiError(Exception):
    """An error answered in OpenAI's shape."""

    def __init__(self, status: int, message: str, code: str, kind: str = "invalid_request_error", headers=None):
        self.status, self.message, self.code, self.kind, self.headers = status, message, code, kind, headers or {}


def error_response(status: int, message: str, code: str, kind: str = "invalid_request_error", headers=None):
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


# ------------------------------------------------------------------------------------------------ the gate


class Gate:
    """What every request passes first, as plain ASGI (before FastAPI parses anything): count and time it, check
    the API key (constant-time compare), refuse a body over the limit without reading it all."""

    def __init__(self, app, metrics: Metrics, paths: set[str], api_key: Optional[str], max_body: int):
        self.app, self.metrics, self.paths, self.max_body = app, metrics, paths, max_body
        self.key = api_key.encode() if api_key else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        endpoint = scope["path"] if scope["path"] in self.paths else "other"
        status, start = [500], time.perf_counter()

        async def send_counted(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            refusal = self._refusal(scope)
            if refusal is None:
                body = await self._read_body(receive)
                if body is None:
                    refusal = self._too_large()
            if refusal is not None:
                return await refusal(scope, receive, send_counted)
            return await self.app(scope, _replay(body, receive), send_counted)
        finally:
            self.metrics.requests.labels(endpoint, str(status[0])).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)

    def _refusal(self, scope) -> Optional[JSONResponse]:
        headers = dict(scope["headers"])
        if self.key is not None and scope["path"] not in OPEN_PATHS:
            given = headers.get(b"authorization", b"")
            scheme, _, token = given.partition(b" ")
            if not given:
                return error_response(401, "Missing API key: send 'Authorization: Bearer KEY'.", "missing_api_key",
                                      "authentication_error")  # fmt: skip
            if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.key):
                return error_response(401, "Invalid API key.", "invalid_api_key", "authentication_error")
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            return self._too_large()
        return None

    def _too_large(self) -> JSONResponse:
        return error_response(413, f"The body is over the limit of {self.max_body:,} bytes.", "body_too_large")

    async def _read_body(self, receive) -> Optional[bytes]:
        """The whole body, or None past the limit (a client may send no or a false Content-Length)."""
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body:
                return None
            more = message.get("more_body", False)
        return b"".join(chunks)


def _replay(body: bytes, receive):
    sent = [False]

    async def replayed():
        if not sent[0]:
            sent[0] = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: the disconnect message, when it comes

    return replayed


# ------------------------------------------------------------------------------------------------ the app


def app(
    runs: Union[dict[str, Union[str, Path]], list[Union[str, Path]]],
    api_key: Optional[str] = None,
    limits: Limits = Limits(),
) -> FastAPI:
    """The ASGI app serving `runs` (paths, named by their folder's name, or {name: path}), for `tunelab serve`, or
    to mount in your own app or test with httpx."""
    named = runs if isinstance(runs, dict) else name_runs(runs)
    metrics = Metrics()
    served: dict[str, ServedRun] = {}
    try:
        for name, path in named.items():
            served[name] = ServedRun(name, path, limits, metrics)
    except BaseException:
        for run in served.values():
            run.close()
        raise

    @asynccontextmanager
    async def lifespan(_):
        yield
        for run in served.values():  # uvicorn has drained the in-flight requests by now
            run.close()

    api = FastAPI(
        title="tunelab serve",
        description="Fine-tuned runs behind OpenAI's chat, completions, embeddings and models endpoints, and "
        "tunelab's task endpoints. Errors are OpenAI's error shape.",
        lifespan=lifespan,
    )
    api.state.runs, api.state.limits, api.state.metrics = served, limits, metrics
    _errors(api)
    _routes(api, served, limits, metrics)
    paths = {route.path for route in api.routes}
    api.add_middleware(Gate, metrics=metrics, paths=paths, api_key=api_key, max_body=int(limits.max_body_mb * 2**20))
    return api


def _errors(api: FastAPI) -> None:
    @api.exception_handler(ApiError)
    async def _api_error(_, e: ApiError):
        return error_response(e.status, e.message, e.code, e.kind, e.headers)

    @api.exception_handler(RequestValidationError)
    async def _invalid(_, e: RequestValidationError):
        problems = []
        for err in e.errors():
            if err.get("type") == "json_invalid":
                return error_response(400, "The request body is not valid JSON.", "invalid_json")
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
            problems.append(f"{where}: {err.get('msg')}")
        return error_response(400, "Invalid request: " + "; ".join(problems), "invalid_request")

    @api.exception_handler(HTTPException)
    async def _http(_, e: HTTPException):
        return error_response(e.status_code, str(e.detail), "not_found" if e.status_code == 404 else "http_error")

    @api.exception_handler(Exception)
    async def _crash(_, e: Exception):
        return error_response(500, f"Internal error: {type(e).__name__}: {e}", "internal_error", "server_error")


# ------------------------------------------------------------------------------------------------ endpoints


def _routes(api: FastAPI, served: dict[str, ServedRun], limits: Limits, metrics: Metrics) -> None:
    def known(model: str) -> ServedRun:
        if model not in served:
            raise ApiError(404, f"No model '{model}' here. Models: {', '.join(served)}.", "model_not_found")
        return served[model]

    def run_for(model: str, endpoint: str) -> ServedRun:
        run = known(model)
        if endpoint not in run.endpoints:
            answers = ", ".join(ENDPOINT_PATHS[e] for e in run.endpoints)
            raise ApiError(400, f"Model '{model}' is a {run.task} run: it answers {answers}.", "wrong_endpoint")
        return run

    def check_fields(request) -> None:
        bad = request.unsupported()
        if bad:
            raise ApiError(400, f"Not supported by tunelab serve: {', '.join(bad)}.", "unsupported_parameter")

    def check_texts(texts: list[str]) -> None:
        if not texts:
            raise ApiError(400, "input is empty: give a text or a list of texts.", "empty_input")
        if len(texts) > limits.max_texts:
            raise ApiError(
                400, f"{len(texts)} texts in one request; the limit is {limits.max_texts}.", "too_many_texts"
            )
        for i, text in enumerate(texts):
            if not text.strip():
                raise ApiError(400, f"input[{i}] is empty.", "empty_input")

    async def submit(run: ServedRun, endpoint: str, job: Job) -> Job:
        try:
            return run.batcher(endpoint).submit(job)
        except Busy as e:
            raise ApiError(503, f"Server busy: {e}. Retry shortly.", "server_busy", "server_error",
                           {"Retry-After": "1"}) from None  # fmt: skip

    async def result(job: Job):
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), limits.timeout_s)
        except asyncio.TimeoutError:
            job.cancelled = True
            raise ApiError(504, f"The request took over {limits.timeout_s:g} s.", "timeout", "server_error") from None

    async def texts_endpoint(body: TextsRequest, endpoint: str) -> tuple[ServedRun, list]:
        check_fields(body)
        run = run_for(body.model, endpoint)
        texts = body.texts()
        check_texts(texts)
        job = await submit(run, endpoint, Job(texts, size=len(texts)))
        return run, await result(job)

    @api.get("/health", summary="Liveness (never needs the key)")
    async def health():
        return {"status": "ok", "models": list(served)}

    @api.get("/v1/models", summary="The served runs (OpenAI shape)")
    async def models():
        return {"object": "list", "data": [_model_card(name, run) for name, run in served.items()]}

    @api.get("/v1/models/{model}", summary="One served run")
    async def model(model: str):
        return _model_card(model, known(model))

    @api.post("/v1/classify", summary="Classification, multilabel and regression runs: what `tunelab predict` returns")
    async def classify(body: TextsRequest):
        _, rows = await texts_endpoint(body, "classify")
        return JSONResponse({"object": "list", "model": body.model, "data": rows})

    @api.post("/v1/entities", summary="ner runs: entity spans with character offsets, as `tunelab predict`")
    async def entities(body: TextsRequest):
        _, rows = await texts_endpoint(body, "entities")
        return JSONResponse({"object": "list", "model": body.model, "data": rows})

    @api.post("/v1/embeddings", summary="Encoder runs: mean-pooled, L2-normalised vectors (OpenAI shape)")
    async def embeddings(body: EmbeddingsRequest):
        run, embedded = await texts_endpoint(body, "embeddings")
        vectors, tokens = [v for v, _ in embedded], sum(n for _, n in embedded)
        metrics.prompt_tokens.labels(run.name).inc(tokens)
        encode = (lambda v: base64.b64encode(v.astype("<f4").tobytes()).decode()) if body.encoding_format == "base64" \
            else (lambda v: v.tolist())  # fmt: skip
        data = [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(vectors)]
        return JSONResponse({"object": "list", "model": body.model, "data": data,
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})  # fmt: skip

    def reply_job(run: ServedRun, body: Sampling, prompt_ids: list[int]) -> Job:
        if len(prompt_ids) >= run.context:
            raise ApiError(400, f"The prompt is {len(prompt_ids)} tokens; the model's context is {run.context}.",
                           "context_length_exceeded")  # fmt: skip
        asked = body.max_tokens or body.max_completion_tokens or run.default_max_tokens or DEFAULT_MAX_TOKENS
        if asked > limits.max_tokens:
            raise ApiError(400, f"max_tokens {asked} is over this server's limit of {limits.max_tokens}.", "max_tokens")
        stops = body.stops()
        if len(stops) > 4:
            raise ApiError(400, "At most 4 stop strings.", "too_many_stops")
        job = Job(None)

        def done(reply: Reply) -> None:
            metrics.generated.labels(run.name).inc(len(reply.ids))
            job.finish(reply)

        job.payload = Reply(
            prompt_ids, max_tokens=min(asked, run.context - len(prompt_ids)), temperature=body.temperature,
            top_p=body.top_p, stop=stops, seed=body.seed, on_text=job.send, on_done=done,
            cancelled=lambda: job.cancelled,
        )  # fmt: skip
        metrics.prompt_tokens.labels(run.name).inc(len(prompt_ids))
        return job

    @api.post("/v1/chat/completions", summary="sft runs: the messages through the run's chat template")
    async def chat(body: ChatRequest):
        check_fields(body)
        run = run_for(body.model, "chat")
        prompt_ids, head = run.chat_prompt([m.as_template_message() for m in body.messages])
        job = reply_job(run, body, prompt_ids)
        job.head = head
        job = await submit(run, "chat", job)
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": body.model}
        if body.stream:
            return _stream(job, head, limits, body.stream_options, chat=True)
        reply = await result(job)
        return {**head, "object": "chat.completion", "system_fingerprint": None,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text}, "logprobs": None,
                             "finish_reason": reply.finish_reason}],
                "usage": _usage(reply)}  # fmt: skip

    @api.post(
        "/v1/completions",
        summary="sft and lm runs: continue the prompt as plain text; summarization and "
        "translation runs: the prompt is the source text, put in the run's template",
    )
    async def completions(body: CompletionRequest):
        check_fields(body)
        run = run_for(body.model, "generate")
        prompts = [body.prompt] if isinstance(body.prompt, str) else list(body.prompt)
        if not prompts or len(prompts) > limits.max_texts:
            raise ApiError(400, f"prompt: give 1 to {limits.max_texts} prompts.", "invalid_prompt")
        if body.stream and len(prompts) > 1:
            raise ApiError(400, "stream: one prompt per streamed request.", "unsupported_parameter")
        jobs = []
        for p in prompts:
            prompt_ids, head = run.completion_prompt(p)
            job = reply_job(run, body, prompt_ids)
            job.head = head
            jobs.append(await submit(run, "generate", job))
        head = {"id": f"cmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": body.model}
        if body.stream:
            return _stream(jobs[0], head, limits, body.stream_options, chat=False)
        replies = [await result(job) for job in jobs]
        usage = {k: sum(_usage(r)[k] for r in replies) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
        return {**head, "object": "text_completion",
                "choices": [{"index": i, "text": r.text, "logprobs": None, "finish_reason": r.finish_reason}
                            for i, r in enumerate(replies)],
                "usage": usage}  # fmt: skip

    @api.get("/metrics", summary="Prometheus metrics")
    async def prometheus():
        return Response(metrics.text(), media_type=metrics.content_type)


ENDPOINT_PATHS = {
    "classify": "/v1/classify",
    "entities": "/v1/entities",
    "embeddings": "/v1/embeddings",
    "chat": "/v1/chat/completions",
    "generate": "/v1/completions",
}


def _model_card(name: str, run: ServedRun) -> dict:
    return {"id": name, "object": "model", "created": run.created, "owned_by": "tunelab", "task": run.task,
            "endpoints": [ENDPOINT_PATHS[e] for e in run.endpoints]}  # fmt: skip


def _usage(reply: Reply) -> dict:
    prompt, completion = len(reply.prompt_ids), len(reply.ids)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _stream(job: Job, head: dict, limits: Limits, options: Optional[dict], chat: bool) -> StreamingResponse:
    """Server-sent events as OpenAI sends them: (chat) a first chunk with the role, one chunk per piece of text, a
    last chunk with finish_reason, (include_usage) a chunk with the usage and no choices, then `data: [DONE]`."""
    include_usage = bool((options or {}).get("include_usage"))
    kind = "chat.completion.chunk" if chat else "text_completion"

    def chunk(delta: Optional[str], finish: Optional[str] = None, role: bool = False) -> str:
        if chat:
            content = {"role": "assistant", "content": ""} if role else ({} if delta is None else {"content": delta})
            choice = {"index": 0, "delta": content, "logprobs": None, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": delta or "", "logprobs": None, "finish_reason": finish}
        body = {**head, "object": kind, "choices": [choice], **({"usage": None} if include_usage else {})}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    async def events():
        deadline = time.monotonic() + limits.timeout_s
        try:
            if chat:
                yield chunk(None, role=True)
            while True:
                try:
                    piece = await asyncio.wait_for(job.pieces.get(), max(0.0, deadline - time.monotonic()))
                except asyncio.TimeoutError:
                    error = {"message": f"The request took over {limits.timeout_s:g} s.", "type": "server_error",
                             "param": None, "code": "timeout"}  # fmt: skip
                    yield f"data: {json.dumps({'error': error})}\n\n"
                    break
                if isinstance(piece, End):
                    if piece.error is not None:
                        error = {"message": f"Internal error: {piece.error}", "type": "server_error", "param": None,
                                 "code": "internal_error"}  # fmt: skip
                        yield f"data: {json.dumps({'error': error})}\n\n"
                        break
                    yield chunk(None, piece.result.finish_reason)
                    if include_usage:
                        usage = {**head, "object": kind, "choices": [], "usage": _usage(piece.result)}
                        yield f"data: {json.dumps(usage)}\n\n"
                    break
                yield chunk(piece)
            yield "data: [DONE]\n\n"
        finally:
            job.cancelled = True  # done, or the client left: either way its row leaves the batch

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})  # fmt: skip
