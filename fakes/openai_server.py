"""A fake OpenAI-compatible model server: one "replica" behind the gateway under test.

``POST /v1/chat/completions`` answers non-streaming or as SSE (``"stream": true``, with
``stream_options.include_usage``) like the real API, so the official ``openai`` client works.
The reply is ``n = min(--max-tokens, request max_tokens/max_completion_tokens)`` words drawn
by a seeded ``random.Random`` from a Faker word list built once at start-up (same seed and
request order -> same text). Latency is ``asyncio.sleep``: time-to-first-token (+/- uniform
jitter), then one token per ``1 / tokens_per_s`` seconds. Also ``GET /v1/models``,
``GET /health`` (shallow) and ``GET /_chaosgate/stats`` (requests served, and those with
``x-stainless-retry-count`` > 0; ``/health`` and ``/_chaosgate/*`` are not counted).
Every response, errors included, carries ``x-chaosgate-replica: <name>``; errors use the
OpenAI error body. Run::

    python -m fakes.openai_server --name 'chat[0]' --host 127.0.0.1 --port 18081 --seed 7

If the port cannot be bound it exits with code 2 and a one-line message on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import logging
import random
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from faker import Faker
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REPLICA_HEADER = "x-chaosgate-replica"
MODEL_ID = "fake-model"
WORD_POOL_SIZE = 2000
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplicaConfig:
    """How one fake replica behaves; the same seed gives the same replies in the same order."""

    name: str
    seed: int = 0
    ttft_ms: float = 20.0
    tokens_per_s: float = 400.0
    jitter_ms: float = 0.0
    max_tokens: int = 16

    def __post_init__(self) -> None:
        if self.tokens_per_s <= 0 or self.max_tokens < 1 or self.ttft_ms < 0 or self.jitter_ms < 0:
            raise ValueError(f"invalid replica config: {self}")


@dataclass
class _Stats:
    requests: int = 0
    retried_requests: int = 0


def _error(status: int, message: str, type_: str = "invalid_request_error",
           param: str | None = None, code: str | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


class _ReplicaMiddleware:
    """Pure ASGI middleware (cheap, streaming-safe): stamps the replica header on every
    response, counts requests, and turns unexpected exceptions into an OpenAI-shaped 500."""

    def __init__(self, app: ASGIApp, name: str, stats: _Stats) -> None:
        self.app, self.stats = app, stats
        self.header = (REPLICA_HEADER.encode(), name.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] != "/health" and not scope["path"].startswith("/_chaosgate/"):
            self.stats.requests += 1
            retry = dict(scope["headers"]).get(b"x-stainless-retry-count", b"0")
            if retry.strip().isdigit() and int(retry) > 0:
                self.stats.retried_requests += 1
        started = False

        async def send_stamped(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), self.header]
            await send(message)

        try:
            await self.app(scope, receive, send_stamped)
        except Exception:
            if started:
                raise
            log.exception("fake replica failed on %s", scope["path"])
            await _error(500, "fake replica internal error", "server_error")(scope, receive, send_stamped)


def _prompt_tokens(messages: list[Any]) -> int:
    """A rough token count: whitespace-separated words in the text of the messages."""
    words = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        parts = content if isinstance(content, list) else [content]
        for part in parts:
            text = part.get("text") if isinstance(part, dict) else part
            words += len(text.split()) if isinstance(text, str) else 0
    return max(words, 1)


def create_app(config: ReplicaConfig) -> Starlette:
    """Build the ASGI app for one replica; all state (rngs, counters) lives in this closure."""
    faker = Faker()
    faker.seed_instance(config.seed)
    words: list[str] = faker.words(nb=WORD_POOL_SIZE)
    content_rng = random.Random(config.seed)
    jitter_rng = random.Random(config.seed + 1)  # separate, so jitter never shifts the content
    stats = _Stats()
    token_s = 1.0 / config.tokens_per_s

    def ttft_s() -> float:
        jitter = jitter_rng.uniform(-config.jitter_ms, config.jitter_ms) if config.jitter_ms else 0.0
        return max(0.0, config.ttft_ms + jitter) / 1000.0

    async def chat_completions(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object.")
        if not isinstance(body.get("model"), str) or not body["model"]:
            return _error(400, "you must provide a model parameter", param="model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(400, "Missing required parameter: 'messages'.", param="messages",
                          code="missing_required_parameter")
        n = config.max_tokens
        for param in ("max_completion_tokens", "max_tokens"):
            value = body.get(param)
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                return _error(400, f"Invalid '{param}': expected an integer >= 1.", param=param,
                              code="invalid_value")
            n = min(n, value)
        tokens = [f"{word} " for word in content_rng.choices(words, k=n)]
        model, created = body["model"], int(time.time())
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        prompt_tokens = _prompt_tokens(messages)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": n,
                 "total_tokens": prompt_tokens + n}
        if body.get("stream"):
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            head = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                    "model": model}
            return StreamingResponse(
                _stream(head, tokens, usage if include_usage else None),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
            )
        await asyncio.sleep(ttft_s() + n * token_s)
        return JSONResponse({
            "id": completion_id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": "".join(tokens), "refusal": None}}],
            "usage": usage,
        })

    async def _stream(head: dict[str, Any], tokens: list[str],
                      usage: dict[str, int] | None) -> AsyncIterator[bytes]:
        def frame(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            chunk = {**head, "choices": [choice]}
            if usage is not None:
                chunk["usage"] = None  # OpenAI sends usage: null on every chunk but the last
            return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"

        loop = asyncio.get_running_loop()
        await asyncio.sleep(ttft_s())
        yield frame({"role": "assistant", "content": ""})
        start = loop.time()
        for i, token in enumerate(tokens, 1):
            # Sleep until this token's slot on a fixed schedule, so delays do not drift.
            await asyncio.sleep(max(0.0, start + i * token_s - loop.time()))
            yield frame({"content": token})
        yield frame({}, "stop")
        if usage is not None:
            last = {**head, "choices": [], "usage": usage}
            yield b"data: " + json.dumps(last, separators=(",", ":")).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "replica": config.name})

    async def models(request: Request) -> Response:
        model = {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "chaosgate"}
        return JSONResponse({"object": "list", "data": [model]})

    async def stats_endpoint(request: Request) -> Response:
        return JSONResponse({"replica": config.name, "requests": stats.requests,
                             "retried_requests": stats.retried_requests})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        response = _error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}")
        response.headers.update(exc.headers or {})  # e.g. Allow on 405
        return response

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/_chaosgate/stats", stats_endpoint, methods=["GET"]),
        ],
        middleware=[Middleware(_ReplicaMiddleware, name=config.name, stats=stats)],
        exception_handlers={HTTPException: http_error},
    )


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind and listen ourselves, so a busy port is detected before uvicorn starts."""
    family, type_, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, type_, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fake OpenAI-compatible replica for chaosgate.")
    parser.add_argument("--name", required=True, help="replica name, sent as x-chaosgate-replica")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ttft-ms", type=float, default=20.0, help="time to first token")
    parser.add_argument("--tokens-per-s", type=float, default=400.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="uniform +/- jitter on ttft")
    parser.add_argument("--max-tokens", type=int, default=16, help="cap on tokens per reply")
    args = parser.parse_args(argv)
    try:
        config = ReplicaConfig(args.name, args.seed, args.ttft_ms, args.tokens_per_s,
                               args.jitter_ms, args.max_tokens)
    except ValueError as exc:
        parser.error(str(exc))  # exits with code 2
    app = create_app(config)
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        print(f"fakes.openai_server {args.name}: cannot bind {args.host}:{args.port}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return 2
    # Faster HTTP parser / event loop when installed (uvicorn[standard]); else h11 + asyncio.
    http = "httptools" if importlib.util.find_spec("httptools") else "auto"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "auto"
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, http=http, loop=loop,
                                           log_level="warning", access_log=False))
    server.run(sockets=[sock])  # what uvicorn.run() does, but on our pre-bound socket
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
