"""The fake LLM server: an OpenAI-compatible model replica behind the gateway under test.

Data port (what clients and the gateway reach)::

    POST /v1/chat/completions   plain, or SSE with "stream": true (usage chunk with stream_options.include_usage)
    POST /v1/embeddings         float lists, or base64 (little-endian float32) with encoding_format=base64
    GET  /v1/models
    GET  /health                shallow: the process answers
    GET  /health/deep           deep: a one-token chat completion through the same code path as clients'

The reply to a chat completion is ``n = min(--max-tokens, max_tokens/max_completion_tokens)``
words drawn by a seeded generator from a Faker word list (same seed and request order, same
text). Timing: time to first token (+/- uniform jitter), then one token per
``1 / tokens_per_s`` seconds. Every response carries ``x-chaosgate-replica: <name>``; errors
have OpenAI's body; client retries (``x-stainless-retry-count`` > 0) are logged and counted.

Control port (``--control-port``, 127.0.0.1 only; see fakes.control): the fault modes of
fakes.llm_modes, switched at runtime, and the counters. Run::

    python -m fakes.llm --name 'chat[0]' --port 18081 --control-port 18082 --seed 7

If a port cannot be bound it exits with code 2 and a one-line message on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from faker import Faker
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from fakes import embeddings as emb
from fakes.chat_stream import chat_stream, pause, silent_stream
from fakes.control import FaultSwitch, create_control_app
from fakes.identity import REPLICA_HEADER, AttemptLog, ReplicaMiddleware, Stats, answer_note
from fakes.llm_modes import (
    LLM_MODES,
    SILENT_STREAM_MODES,
    STREAM_MODES,
    CpuBurn,
    ErrorStatus,
    HangBeforeHeaders,
    HealthFail,
    InferenceFail,
    LlmMode,
    MemoryGrowth,
    OpenaiError,
    SlowTokens,
    SlowTtft,
    WrongContentType,
)
from fakes.openai_errors import openai_error, provider_error, status_error
from fakes.pressure import Pressure
from fakes.serving import FakeApps, add_serving_arguments, serve, tls_from_args

__all__ = ["MODEL_ID", "REPLICA_HEADER", "LlmServer", "ReplicaConfig", "create_apps", "main"]

MODEL_ID = "fake-model"
WORD_POOL_SIZE = 2000
DEEP_PROBE = {"model": MODEL_ID, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
INFERENCE_MODES = (ErrorStatus, OpenaiError, InferenceFail, HangBeforeHeaders, WrongContentType, SlowTtft, SlowTokens)


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


async def _until_disconnected(request: Request) -> None:
    """Wait until the client goes away (a hung request holds nothing but this coroutine)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _json_body(request: Request) -> dict[str, Any] | Response:
    try:
        body = json.loads(await request.body())
    except ValueError:
        return openai_error(400, "We could not parse the JSON body of your request.")
    if not isinstance(body, dict):
        return openai_error(400, "The request body must be a JSON object.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return openai_error(400, "you must provide a model parameter", param="model")
    return body


def _reply_length(body: dict[str, Any], cap: int) -> int | Response:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return openai_error(400, "Missing required parameter: 'messages'.", param="messages",
                            code="missing_required_parameter")
    n = cap
    for param in ("max_completion_tokens", "max_tokens"):
        value = body.get(param)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            return openai_error(400, f"Invalid '{param}': expected an integer >= 1.", param=param, code="invalid_value")
        n = min(n, value)
    return n


class LlmServer:
    """One replica: its content and timing generators, fault switch, counters and apps."""

    def __init__(self, config: ReplicaConfig, initial_fault: LlmMode | None = None, log_requests: bool = False,
                 attempts_file: str | None = None) -> None:
        self.config = config
        faker = Faker()
        faker.seed_instance(config.seed)
        self.words: list[str] = faker.words(nb=WORD_POOL_SIZE)
        self.content_rng = random.Random(config.seed)
        self.probe_rng = random.Random(config.seed + 2)  # deep health checks never shift clients' content
        self.jitter_rng = random.Random(config.seed + 1)
        self.token_s = 1.0 / config.tokens_per_s
        self.stats = Stats(config.name)
        self.pressure = Pressure()
        self.switch: FaultSwitch[LlmMode] = FaultSwitch(LLM_MODES, config.seed + 3, self._on_mode)
        self.initial_fault = initial_fault
        self.log_requests = log_requests
        self.attempts = AttemptLog(attempts_file, config.name, answers=True) if attempts_file else None

    # -- timing and faults --------------------------------------------------------------
    def ttft_s(self) -> float:
        spread = self.config.jitter_ms
        jitter = self.jitter_rng.uniform(-spread, spread) if spread else 0.0
        return max(0.0, self.config.ttft_ms + jitter) / 1000.0

    def _on_mode(self, mode: LlmMode | None) -> None:
        if isinstance(mode, MemoryGrowth):
            self.pressure.start_memory_growth(mode.mb_per_s, mode.max_mb)
        elif isinstance(mode, CpuBurn):
            self.pressure.start_cpu_burn(mode.duty, mode.period)
        else:
            self.pressure.stop()

    async def _early_fault(self, fault: BaseModel | None, request: Request) -> Response | None:
        """The answer of a fault that replaces the whole response, if ``fault`` is one."""
        if isinstance(fault, HangBeforeHeaders):
            await _until_disconnected(request)
            return Response(status_code=499)  # nobody is listening any more
        if isinstance(fault, ErrorStatus):
            return status_error(fault.status, fault.retry_after if fault.status in (429, 503) else None)
        if isinstance(fault, OpenaiError):
            return provider_error(fault)
        if isinstance(fault, InferenceFail):
            return status_error(fault.status)
        if isinstance(fault, WrongContentType):
            return Response(fault.body, media_type=fault.content_type)
        return None

    # -- inference ---------------------------------------------------------------------
    async def complete(self, body: dict[str, Any], request: Request, rng: random.Random | None = None) -> Response:
        """A chat completion for a validated-JSON ``body``; clients and the deep health check both come here."""
        n = _reply_length(body, self.config.max_tokens)
        if isinstance(n, Response):
            return n
        stream = bool(body.get("stream"))
        tokens = [f"{word} " for word in (rng or self.content_rng).choices(self.words, k=n)]
        fault = self.switch.draw(*INFERENCE_MODES, *(STREAM_MODES + SILENT_STREAM_MODES if stream else ()))
        if (early := await self._early_fault(fault, request)) is not None:
            return early
        if isinstance(fault, SILENT_STREAM_MODES):
            return StreamingResponse(silent_stream(fault), media_type="text/event-stream", headers=SSE_HEADERS)
        ttft = fault.ttft if isinstance(fault, SlowTtft) else self.ttft_s()
        token_s = 1.0 / fault.tokens_per_s if isinstance(fault, SlowTokens) else self.token_s
        model, created = body["model"], int(time.time())
        note = answer_note(request.scope)  # for the attempt log's answer line
        note.model = model
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        prompt_tokens = _prompt_tokens(body["messages"])
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": n, "total_tokens": prompt_tokens + n}
        if stream:
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            head = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}
            stream_fault = fault if isinstance(fault, STREAM_MODES) else None
            return StreamingResponse(
                chat_stream(head, tokens, usage if include_usage else None, ttft, token_s, stream_fault, note),
                media_type="text/event-stream", headers=SSE_HEADERS)
        await pause(ttft + n * token_s)
        note.tokens = n
        return JSONResponse({
            "id": completion_id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": "".join(tokens), "refusal": None}}],
            "usage": usage,
        })

    async def chat_completions(self, request: Request) -> Response:
        body = await _json_body(request)
        return body if isinstance(body, Response) else await self.complete(body, request)

    async def embeddings(self, request: Request) -> Response:
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        texts = emb.inputs_of(body.get("input"))
        if texts is None:
            return openai_error(400, "'input' must be a non-empty string, array of strings, or array of token arrays.",
                                param="input", code="invalid_value")
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            return openai_error(400, f"Invalid 'encoding_format': {encoding!r}; expected 'float' or 'base64'.",
                                param="encoding_format", code="invalid_value")
        dimensions = body.get("dimensions", emb.DEFAULT_DIMENSIONS)
        if not isinstance(dimensions, int) or isinstance(dimensions, bool) or not 1 <= dimensions <= emb.MAX_DIMENSIONS:
            return openai_error(400, f"Invalid 'dimensions': expected an integer from 1 to {emb.MAX_DIMENSIONS}.",
                                param="dimensions", code="invalid_value")
        fault = self.switch.draw(*INFERENCE_MODES)
        if (early := await self._early_fault(fault, request)) is not None:
            return early
        await pause(fault.ttft if isinstance(fault, SlowTtft) else self.ttft_s())
        data = [{"object": "embedding", "index": i,
                 "embedding": emb.encode(emb.vector(text, self.config.seed, dimensions), encoding)}
                for i, text in enumerate(texts)]
        tokens = sum(max(1, len(text.split())) for text in texts)
        return JSONResponse({"object": "list", "data": data, "model": body["model"],
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def models(self, request: Request) -> Response:
        model = {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "chaosgate"}
        return JSONResponse({"object": "list", "data": [model]})

    # -- health ------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        if (fault := self.switch.draw(HealthFail)) is not None:
            return JSONResponse({"status": "failing", "replica": self.config.name}, fault.status)
        return JSONResponse({"status": "ok", "replica": self.config.name})

    async def deep_health(self, request: Request) -> Response:
        """Healthy only if a real (tiny) inference through ``complete`` works right now."""
        if (fault := self.switch.draw(HealthFail)) is not None:
            return JSONResponse({"status": "failing", "replica": self.config.name}, fault.status)
        began = time.perf_counter()
        answer = await self.complete(dict(DEEP_PROBE), request, rng=self.probe_rng)
        problem = _completion_problem(answer)
        if problem is not None:
            return JSONResponse({"status": "failing", "replica": self.config.name, "reason": problem}, 503)
        return JSONResponse({"status": "ok", "replica": self.config.name,
                             "inference_ms": round((time.perf_counter() - began) * 1000, 3)})

    # -- assembly ----------------------------------------------------------------------
    def apps(self) -> FakeApps:
        async def http_error(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, HTTPException)
            response = openai_error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}")
            response.headers.update(exc.headers or {})  # e.g. Allow on 405
            return response

        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            if self.initial_fault is not None:
                self.switch.set(self.initial_fault)
            yield
            self.pressure.stop()

        data = Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
                Route("/v1/embeddings", self.embeddings, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/health", self.health, methods=["GET"]),
                Route("/health/deep", self.deep_health, methods=["GET"]),
            ],
            middleware=[Middleware(ReplicaMiddleware, stats=self.stats, log_requests=self.log_requests,
                                   attempts=self.attempts, on_error=lambda: status_error(500))],
            exception_handlers={HTTPException: http_error},
            lifespan=lifespan,
        )
        control = create_control_app(self.switch, lambda: {**self.stats.as_json(),
                                                           "held_mb": round(self.pressure.held_mb, 1)})
        return FakeApps(data=data, control=control)


def _completion_problem(response: Response) -> str | None:
    """Why ``response`` is not a good chat completion, or None if it is one."""
    body = getattr(response, "body", b"")
    if response.status_code != 200:
        try:
            message = json.loads(body)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = ""
        return f"inference answered {response.status_code} {message}".strip()
    content_type = response.headers.get("content-type", "")
    if not content_type.startswith("application/json"):
        return f"inference answered content-type {content_type!r}"
    try:
        content = json.loads(body)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return "inference answered a body that is not a chat completion"
    return None if content else "inference answered an empty completion"


def create_apps(config: ReplicaConfig, initial_fault: LlmMode | None = None, log_requests: bool = False,
                attempts_file: str | None = None) -> FakeApps:
    """The data and control apps of one replica (all state lives in their LlmServer)."""
    return LlmServer(config, initial_fault, log_requests, attempts_file).apps()


def warm() -> None:
    """Build a replica's apps once, so what that does the first time in a process (Faker's providers, pydantic's
    validators) is done before a fork server (fakes/forkserver.py) forks replicas from this process."""
    create_apps(ReplicaConfig("warm-up"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fakes.llm",
                                     description="Fake OpenAI-compatible LLM replica for chaosgate.")
    add_serving_arguments(parser, port_help="data port: the OpenAI API and health")
    parser.add_argument("--ttft-ms", type=float, default=20.0, help="time to first token")
    parser.add_argument("--tokens-per-s", type=float, default=400.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="uniform +/- jitter on ttft")
    parser.add_argument("--max-tokens", type=int, default=16, help="cap on tokens per reply")
    parser.add_argument("--fault", default=None, help='fault mode to start with, as JSON: \'{"mode": "slow_ttft"}\'')
    parser.add_argument("--log-requests", action="store_true", help="log every request (default: client retries only)")
    args = parser.parse_args(argv)
    try:
        config = ReplicaConfig(args.name, args.seed, args.ttft_ms, args.tokens_per_s, args.jitter_ms, args.max_tokens)
        fault = LLM_MODES.validate_json(args.fault) if args.fault else None
        tls = tls_from_args(args)
    except (ValueError, ValidationError) as exc:
        parser.error(str(exc))  # exits with code 2
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s fakes.llm {args.name}: %(message)s")
    return serve("fakes.llm", args.name, create_apps(config, fault, args.log_requests, args.attempts_file),
                 args.host, args.port, args.control_port, args.control_host, tls)


if __name__ == "__main__":
    sys.exit(main())
