"""The fake Anthropic server: a Messages API replica behind the gateway under test.

Data port (what clients and the gateway reach)::

    POST /v1/messages   plain, or SSE with "stream": true
    GET  /v1/models
    GET  /health        shallow: the process answers
    GET  /health/deep   deep: a one-token message through the same code path as clients'

The same replica model as the OpenAI fake (fakes/llm.py): ``n = min(--max-tokens, max_tokens)`` words
from a seeded Faker word list, time to first token (+/- jitter) then one token per ``1 / tokens_per_s``
seconds, ``x-chaosgate-replica: <name>`` on every response, the attempt log, and the control port with
the modes of fakes.anthropic_modes. As the API does, every response carries ``request-id``, successful
ones the ``anthropic-ratelimit-*`` headers, errors Anthropic's body. A stream is the API's event
sequence: ``message_start``, ``content_block_start``, ``ping``, one ``content_block_delta`` (text_delta)
per token, ``content_block_stop``, ``message_delta`` (stop_reason, usage), ``message_stop``. Run::

    python -m fakes.anthropic --name 'claude[0]' --port 18091 --control-port 18092 --seed 7
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from faker import Faker
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from fakes.anthropic_errors import (
    ERROR_STATUS,
    REQUEST_ID_HEADER,
    STATUS_ERRORS,
    anthropic_error,
    error_body,
    new_request_id,
    provider_error,
    rate_limit_headers,
)
from fakes.anthropic_modes import (
    ANTHROPIC_MODES,
    ANTHROPIC_STREAM_MODES,
    AnthropicError,
    AnthropicMidstreamError,
    AnthropicMode,
    AnthropicStreamMode,
)
from fakes.chat_stream import pause, silent_stream
from fakes.control import FaultSwitch, create_control_app
from fakes.identity import AnswerNote, AttemptLog, ReplicaMiddleware, Stats, answer_note
from fakes.llm import WORD_POOL_SIZE, ReplicaConfig, _prompt_tokens, _until_disconnected
from fakes.llm_modes import (
    SILENT_STREAM_MODES,
    CpuBurn,
    HangBeforeHeaders,
    HealthFail,
    InferenceFail,
    MalformedSse,
    MemoryGrowth,
    SlowTokens,
    SlowTtft,
    StallFirstToken,
    StallStream,
    WrongContentType,
)
from fakes.pressure import Pressure
from fakes.serving import FakeApps, add_serving_arguments, serve, tls_from_args

__all__ = ["MODEL_ID", "AnthropicServer", "create_apps", "main"]

MODEL_ID = "claude-fake"
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
DEEP_PROBE = {"model": MODEL_ID, "max_tokens": 1, "messages": [{"role": "user", "content": "ping"}]}
INFERENCE_MODES = (AnthropicError, InferenceFail, HangBeforeHeaders, WrongContentType, SlowTtft, SlowTokens)
PING = {"type": "ping"}


def event(name: str, payload: dict[str, Any]) -> bytes:
    """One SSE event as the API frames it: its name, then its JSON (whose ``type`` repeats the name)."""
    return f"event: {name}\ndata: ".encode() + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _invalid(message: str) -> Response:
    return anthropic_error(400, message)


def _validated(body: Any, cap: int) -> tuple[dict[str, Any], int] | Response:
    """The request body and the reply's length, or the API's 400 for what is wrong with it."""
    if not isinstance(body, dict):
        return _invalid("The request body must be a JSON object.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return _invalid("model: Field required")
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        return _invalid("max_tokens: Field required")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return _invalid("max_tokens: Input should be a valid integer greater than or equal to 1")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _invalid("messages: Field required" if messages is None else "messages: at least one message is required")
    return body, min(cap, max_tokens)


class AnthropicServer:
    """One replica: its content and timing generators, fault switch, counters and apps."""

    def __init__(self, config: ReplicaConfig, initial_fault: AnthropicMode | None = None,
                 log_requests: bool = False, attempts_file: str | None = None) -> None:
        self.config = config
        faker = Faker()
        faker.seed_instance(config.seed)
        self.words: list[str] = faker.words(nb=WORD_POOL_SIZE)
        self.content_rng = random.Random(config.seed)
        self.probe_rng = random.Random(config.seed + 2)
        self.jitter_rng = random.Random(config.seed + 1)
        self.token_s = 1.0 / config.tokens_per_s
        self.stats = Stats(config.name)
        self.pressure = Pressure()
        self.switch: FaultSwitch[AnthropicMode] = FaultSwitch(ANTHROPIC_MODES, config.seed + 3, self._on_mode)
        self.initial_fault = initial_fault
        self.log_requests = log_requests
        self.attempts = AttemptLog(attempts_file, config.name, answers=True) if attempts_file else None

    def ttft_s(self) -> float:
        spread = self.config.jitter_ms
        jitter = self.jitter_rng.uniform(-spread, spread) if spread else 0.0
        return max(0.0, self.config.ttft_ms + jitter) / 1000.0

    def _on_mode(self, mode: AnthropicMode | None) -> None:
        if isinstance(mode, MemoryGrowth):
            self.pressure.start_memory_growth(mode.mb_per_s, mode.max_mb)
        elif isinstance(mode, CpuBurn):
            self.pressure.start_cpu_burn(mode.duty, mode.period)
        else:
            self.pressure.stop()

    async def _early_fault(self, fault: object, request: Request) -> Response | None:
        if isinstance(fault, HangBeforeHeaders):
            await _until_disconnected(request)
            return Response(status_code=499)
        if isinstance(fault, AnthropicError):
            return provider_error(fault)
        if isinstance(fault, InferenceFail):
            return anthropic_error(fault.status)
        if isinstance(fault, WrongContentType):
            return Response(fault.body, media_type=fault.content_type)
        return None

    async def create_message(self, body: dict[str, Any], request: Request, rng: random.Random | None = None) -> Response:
        """A message for a JSON ``body``; clients and the deep health check both come here."""
        checked = _validated(body, self.config.max_tokens)
        if isinstance(checked, Response):
            return checked
        body, n = checked
        stream = bool(body.get("stream"))
        tokens = [f"{word} " for word in (rng or self.content_rng).choices(self.words, k=n)]
        fault = self.switch.draw(*INFERENCE_MODES, *(ANTHROPIC_STREAM_MODES + SILENT_STREAM_MODES if stream else ()))
        if (early := await self._early_fault(fault, request)) is not None:
            return early
        note = answer_note(request.scope)  # for the attempt log's answer line
        note.model = body["model"]
        request_id = new_request_id()
        headers = {REQUEST_ID_HEADER: request_id, **rate_limit_headers(RATE_LIMIT_LEFT, 60.0)}
        ttft = fault.ttft if isinstance(fault, SlowTtft) else self.ttft_s()
        token_s = 1.0 / fault.tokens_per_s if isinstance(fault, SlowTokens) else self.token_s
        message = {"id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant",
                   "model": body["model"], "content": [], "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": _prompt_tokens(body["messages"]), "output_tokens": 1}}
        stop_reason = "max_tokens" if n == body["max_tokens"] else "end_turn"
        if stream:
            opening = event("message_start", {"type": "message_start", "message": message}) \
                + event("content_block_start", {"type": "content_block_start", "index": 0,
                                                "content_block": {"type": "text", "text": ""}}) \
                + event("ping", PING)
            if isinstance(fault, SILENT_STREAM_MODES):
                # Stalled: what comes before the first token, then nothing; keep-alive only: pings, nothing else.
                before = opening if isinstance(fault, StallFirstToken) else b""
                return StreamingResponse(silent_stream(fault, event("ping", PING), before), media_type="text/event-stream",
                                         headers={**SSE_HEADERS, **headers})
            stream_fault = fault if isinstance(fault, ANTHROPIC_STREAM_MODES) else None
            return StreamingResponse(
                message_stream(opening, tokens, stop_reason, ttft, token_s, stream_fault, request_id, note),
                media_type="text/event-stream", headers={**SSE_HEADERS, **headers})
        await pause(ttft + n * token_s)
        note.tokens = n
        usage = {**message["usage"], "output_tokens": n}
        return JSONResponse({**message, "content": [{"type": "text", "text": "".join(tokens)}],
                             "stop_reason": stop_reason, "usage": usage}, headers=headers)

    async def messages(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _invalid("The request body is not valid JSON.")
        return await self.create_message(body, request)

    async def models(self, request: Request) -> Response:
        model = {"type": "model", "id": MODEL_ID, "display_name": "Claude (chaosgate fake)",
                 "created_at": "2025-01-01T00:00:00Z"}
        return JSONResponse({"data": [model], "has_more": False, "first_id": MODEL_ID, "last_id": MODEL_ID})

    async def health(self, request: Request) -> Response:
        if (fault := self.switch.draw(HealthFail)) is not None:
            return JSONResponse({"status": "failing", "replica": self.config.name}, fault.status)
        return JSONResponse({"status": "ok", "replica": self.config.name})

    async def deep_health(self, request: Request) -> Response:
        """Healthy only if a real (tiny) message through ``create_message`` works right now."""
        if (fault := self.switch.draw(HealthFail)) is not None:
            return JSONResponse({"status": "failing", "replica": self.config.name}, fault.status)
        answer = await self.create_message(dict(DEEP_PROBE), request, rng=self.probe_rng)
        if answer.status_code != 200 or not answer.headers.get("content-type", "").startswith("application/json"):
            return JSONResponse({"status": "failing", "replica": self.config.name,
                                 "reason": f"inference answered {answer.status_code}"}, 503)
        return JSONResponse({"status": "ok", "replica": self.config.name})

    def apps(self) -> FakeApps:
        async def http_error(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, HTTPException)
            return anthropic_error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}",
                                   headers=dict(exc.headers or {}))

        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            if self.initial_fault is not None:
                self.switch.set(self.initial_fault)
            yield
            self.pressure.stop()

        data = Starlette(
            routes=[
                Route("/v1/messages", self.messages, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/health", self.health, methods=["GET"]),
                Route("/health/deep", self.deep_health, methods=["GET"]),
            ],
            middleware=[Middleware(ReplicaMiddleware, stats=self.stats, log_requests=self.log_requests,
                                   attempts=self.attempts, on_error=lambda: anthropic_error(500))],
            exception_handlers={HTTPException: http_error},
            lifespan=lifespan,
        )
        control = create_control_app(self.switch, lambda: {**self.stats.as_json(),
                                                           "held_mb": round(self.pressure.held_mb, 1)})
        return FakeApps(data=data, control=control)


RATE_LIMIT_LEFT = 49  # anthropic-ratelimit-requests-remaining on a served request


async def message_stream(opening: bytes, tokens: list[str], stop_reason: str, ttft: float, token_s: float,
                         fault: AnthropicStreamMode | None, request_id: str,
                         sent: AnswerNote | None = None) -> AsyncIterator[bytes]:
    """The events of one streamed message; a stream fault acts once ``after_tokens`` deltas are out; ``sent``
    counts the text deltas that went out (the attempt log's answer line)."""
    yield opening
    await pause(ttft)
    start = time.monotonic()
    for i, token in enumerate(tokens):
        if fault is not None and i == fault.after_tokens:
            async for broken in _fault_events(fault, request_id):
                yield broken
            if not isinstance(fault, MalformedSse):
                return
        if i:
            await pause(start + i * token_s - time.monotonic())
        yield event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                            "delta": {"type": "text_delta", "text": token}})
        if sent is not None:
            sent.tokens += 1
    if fault is not None and fault.after_tokens >= len(tokens):
        async for broken in _fault_events(fault, request_id):
            yield broken
        if not isinstance(fault, MalformedSse):
            return
    yield event("content_block_stop", {"type": "content_block_stop", "index": 0})
    yield event("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                  "usage": {"output_tokens": len(tokens)}})
    yield event("message_stop", {"type": "message_stop"})


async def _fault_events(fault: AnthropicStreamMode, request_id: str) -> AsyncIterator[bytes]:
    if isinstance(fault, StallStream):
        await asyncio.Event().wait()  # never set: Starlette cancels us when the client leaves
    elif isinstance(fault, MalformedSse):
        yield b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{\n\n'
    elif isinstance(fault, AnthropicMidstreamError):
        type_, message = STATUS_ERRORS[ERROR_STATUS[fault.error]]
        yield event("error", error_body(type_, message, request_id))


def create_apps(config: ReplicaConfig, initial_fault: AnthropicMode | None = None, log_requests: bool = False,
                attempts_file: str | None = None) -> FakeApps:
    """The data and control apps of one replica (all state lives in their AnthropicServer)."""
    return AnthropicServer(config, initial_fault, log_requests, attempts_file).apps()


def warm() -> None:
    """Build a replica's apps once before a fork server forks replicas from this process (as fakes.llm does)."""
    create_apps(ReplicaConfig("warm-up"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fakes.anthropic",
                                     description="Fake Anthropic Messages API replica for chaosgate.")
    add_serving_arguments(parser, port_help="data port: the Messages API and health")
    parser.add_argument("--ttft-ms", type=float, default=20.0, help="time to first token")
    parser.add_argument("--tokens-per-s", type=float, default=400.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="uniform +/- jitter on ttft")
    parser.add_argument("--max-tokens", type=int, default=16, help="cap on tokens per reply")
    parser.add_argument("--fault", default=None,
                        help='fault mode to start with, as JSON: \'{"mode": "anthropic_error"}\'')
    parser.add_argument("--log-requests", action="store_true", help="log every request (default: client retries only)")
    args = parser.parse_args(argv)
    try:
        config = ReplicaConfig(args.name, args.seed, args.ttft_ms, args.tokens_per_s, args.jitter_ms, args.max_tokens)
        fault = ANTHROPIC_MODES.validate_json(args.fault) if args.fault else None
        tls = tls_from_args(args)
    except (ValueError, ValidationError) as exc:
        parser.error(str(exc))  # exits with code 2
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s fakes.anthropic {args.name}: %(message)s")
    return serve("fakes.anthropic", args.name, create_apps(config, fault, args.log_requests, args.attempts_file),
                 args.host, args.port, args.control_port, args.control_host, tls)


if __name__ == "__main__":
    sys.exit(main())
