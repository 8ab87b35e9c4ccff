"""The fault modes of the fake LLM server: what each one does and its parameters.

One mode is active at a time (``PUT /fault`` on the control port). Modes with a ``rate``
hit each request they apply to with that probability, drawn from the replica's seeded
generator. "Inference" means ``POST /v1/chat/completions``, ``POST /v1/embeddings`` and the
deep health check, which runs a tiny chat completion through the same code path; the
stream modes apply to streaming chat completions only. The harness's ``llm_fault`` kind
(harness/faults/llm_mode.py) is built from these same models.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from harness.durations import Duration


RetryAfterFormat = Literal["seconds", "http_date"]
WELCOME_PAGE = "<!doctype html><html><head><title>Welcome</title></head><body><h1>It works!</h1></body></html>"


class _Mode(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _PerRequest(_Mode):
    rate: float = Field(default=1.0, ge=0.0, le=1.0,
                        description="Probability that a request the mode applies to is hit (seeded, per request).")


class _StreamMode(_PerRequest):
    after_tokens: int = Field(default=2, ge=0, le=100_000, description="Content tokens sent before the fault.")


class ErrorStatus(_PerRequest):
    """Inference answers ``status`` with OpenAI's error body (503: overloaded)."""

    mode: Literal["error_status"]
    status: Literal[429, 500, 502, 503] = Field(default=503, description="The HTTP status.")
    retry_after: Duration | None = Field(
        default=1.0, description="Sent as retry-after (seconds, rounded up) and retry-after-ms on 429 and 503; null: none.")


class SlowTtft(_PerRequest):
    """The time to first token becomes ``ttft`` (also delays non-streamed replies and embeddings)."""

    mode: Literal["slow_ttft"]
    ttft: Duration = Field(default=2.0, description="Time to first token while the mode is active.")


class SlowTokens(_PerRequest):
    """Tokens come at ``tokens_per_s``."""

    mode: Literal["slow_tokens"]
    tokens_per_s: float = Field(default=5.0, gt=0, le=1_000_000, description="Token rate while the mode is active.")


class StallStream(_StreamMode):
    """The stream sends ``after_tokens`` tokens, then nothing more, and never ends."""

    mode: Literal["stall_stream"]


class TruncateStream(_StreamMode):
    """The stream ends cleanly after ``after_tokens`` tokens: no finish chunk, no ``data: [DONE]``."""

    mode: Literal["truncate_stream"]


class MalformedSse(_StreamMode):
    """After ``after_tokens`` tokens comes a ``data:`` frame that is not JSON; the stream then goes on."""

    mode: Literal["malformed_sse"]


class MidstreamError(_StreamMode):
    """After ``after_tokens`` tokens comes an ``{"error": ...}`` frame, and the stream ends."""

    mode: Literal["midstream_error"]


class OpenaiError(_PerRequest):
    """Inference answers one of the OpenAI API's own errors, exact in status, body and headers:
    ``rate_limit_exceeded`` (429, with ``retry-after``, ``retry-after-ms`` and the
    ``x-ratelimit-*-requests`` headers), ``insufficient_quota`` (429, never retryable: no
    ``retry-after``), ``server_error`` (500) or ``overloaded`` (503)."""

    mode: Literal["openai_error"]
    error: Literal["rate_limit_exceeded", "insufficient_quota", "server_error", "overloaded"] = Field(
        default="rate_limit_exceeded", description="Which of the provider's errors.")
    retry_after: Duration | None = Field(
        default=1.0, description="When to come back, sent as retry-after (and, as seconds, retry-after-ms); "
                                 "null: no retry-after at all. Never sent with insufficient_quota.")
    retry_after_format: RetryAfterFormat = Field(
        default="seconds", description="retry-after as whole seconds (rounded up), or as an HTTP date "
                                       "(then without retry-after-ms).")


class StallFirstToken(_PerRequest):
    """A streamed reply answers 200 and its opening frames (none for OpenAI; message_start,
    content_block_start and a ping for Anthropic), then nothing: no token ever comes."""

    mode: Literal["stall_first_token"]


class KeepaliveOnly(_PerRequest):
    """A streamed reply answers 200, then only keep-alive frames, every ``interval``, forever:
    SSE comments (``: keep-alive``) for OpenAI, ``ping`` events for Anthropic. No token ever comes."""

    mode: Literal["keepalive_only"]
    interval: Duration = Field(default=1.0, gt=0.0, le=600.0, description="Time between keep-alive frames.")


class HangBeforeHeaders(_PerRequest):
    """Inference requests are read and never answered (until the client gives up)."""

    mode: Literal["hang_before_headers"]


class WrongContentType(_PerRequest):
    """Inference answers 200 with ``content_type`` and ``body`` (by default an HTML page, as a
    misrouted proxy or a captive portal sends) instead of JSON or SSE."""

    mode: Literal["wrong_content_type"]
    content_type: str = Field(default="text/html; charset=utf-8", min_length=1, description="The content-type sent.")
    body: str = Field(default=WELCOME_PAGE, description="The body sent.")


class HealthFail(_PerRequest):
    """``/health`` and ``/health/deep`` answer ``status`` while inference works."""

    mode: Literal["health_fail"]
    status: int = Field(default=503, ge=400, le=599, description="The health checks' HTTP status.")


class InferenceFail(_PerRequest):
    """The gray failure: inference answers ``status`` while the shallow ``/health`` passes
    (the deep health check, which runs inference, fails)."""

    mode: Literal["inference_fail"]
    status: int = Field(default=500, ge=400, le=599, description="The inference HTTP status.")


class MemoryGrowth(_Mode):
    """The process allocates (and touches) ``mb_per_s`` MB per second, up to ``max_mb``; freed when cleared."""

    mode: Literal["memory_growth"]
    mb_per_s: float = Field(default=50.0, gt=0, le=4096, description="Growth rate, in MiB per second.")
    max_mb: float = Field(default=512.0, gt=0, le=65536, description="Stop growing after this many MiB.")


class CpuBurn(_Mode):
    """The event loop spins the CPU for ``duty`` of every ``period``: every request waits behind it."""

    mode: Literal["cpu_burn"]
    duty: float = Field(default=0.9, gt=0.0, le=0.99, description="Share of each period spent spinning.")
    period: Duration = Field(default=0.1, gt=0.0, le=10.0, description="Length of one spin-and-rest cycle.")


LLM_MODE_MODELS: tuple[type[BaseModel], ...] = (
    ErrorStatus, OpenaiError, SlowTtft, SlowTokens, StallStream, TruncateStream, MalformedSse, MidstreamError,
    StallFirstToken, KeepaliveOnly, HangBeforeHeaders, WrongContentType, HealthFail, InferenceFail, MemoryGrowth,
    CpuBurn,
)
LlmMode = Annotated[
    Union[ErrorStatus, OpenaiError, SlowTtft, SlowTokens, StallStream, TruncateStream, MalformedSse,  # noqa: UP007
          MidstreamError, StallFirstToken, KeepaliveOnly, HangBeforeHeaders, WrongContentType, HealthFail,
          InferenceFail, MemoryGrowth, CpuBurn],
    Field(discriminator="mode"),
]
LLM_MODES: TypeAdapter[LlmMode] = TypeAdapter(LlmMode)
STREAM_MODES = (StallStream, TruncateStream, MalformedSse, MidstreamError)
SILENT_STREAM_MODES = (StallFirstToken, KeepaliveOnly)  # streams that never send a token
StreamMode = StallStream | TruncateStream | MalformedSse | MidstreamError
