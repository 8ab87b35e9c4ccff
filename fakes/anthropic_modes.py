"""The fault modes of the fake Anthropic server (fakes/anthropic.py).

The protocol-neutral modes of the OpenAI fake (fakes/llm_modes.py: slow or stalled streams,
hangs, wrong content types, failing health or inference, memory growth, CPU saturation) act the
same here, in Anthropic's frames and error bodies; the provider's own errors are ``anthropic_error``
(an HTTP error) and ``midstream_error`` (an SSE ``error`` event after a 200 and some deltas). The
harness's ``anthropic_fault`` kind (harness/faults/anthropic_mode.py) is built from these models.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, Field, TypeAdapter

from fakes.llm_modes import (
    CpuBurn,
    HangBeforeHeaders,
    HealthFail,
    InferenceFail,
    KeepaliveOnly,
    MalformedSse,
    MemoryGrowth,
    RetryAfterFormat,
    SlowTokens,
    SlowTtft,
    StallFirstToken,
    StallStream,
    TruncateStream,
    WrongContentType,
    _PerRequest,
    _StreamMode,
)
from harness.durations import Duration

AnthropicErrorType = Literal["overloaded_error", "rate_limit_error", "api_error"]


class AnthropicError(_PerRequest):
    """Inference answers one of the Anthropic API's own errors, exact in status, body and headers:
    ``overloaded_error`` (529), ``rate_limit_error`` (429, with the ``anthropic-ratelimit-*`` headers)
    or ``api_error`` (500)."""

    mode: Literal["anthropic_error"]
    error: AnthropicErrorType = Field(default="overloaded_error", description="Which of the provider's errors.")
    retry_after: Duration | None = Field(
        default=1.0, description="When to come back, sent as retry-after; null: no retry-after at all.")
    retry_after_format: RetryAfterFormat = Field(
        default="seconds", description="retry-after as whole seconds (rounded up), or as an HTTP date.")


class AnthropicMidstreamError(_StreamMode):
    """A streamed reply answers 200 and ``after_tokens`` text deltas, then an SSE ``error`` event
    (``overloaded_error`` unless told otherwise), and the stream ends: no ``message_stop``."""

    mode: Literal["midstream_error"]
    error: AnthropicErrorType = Field(default="overloaded_error", description="The error event's type.")


ANTHROPIC_MODE_MODELS: tuple[type[BaseModel], ...] = (
    AnthropicError, SlowTtft, SlowTokens, StallStream, TruncateStream, MalformedSse, AnthropicMidstreamError,
    StallFirstToken, KeepaliveOnly, HangBeforeHeaders, WrongContentType, HealthFail, InferenceFail, MemoryGrowth,
    CpuBurn,
)
AnthropicMode = Annotated[
    Union[AnthropicError, SlowTtft, SlowTokens, StallStream, TruncateStream, MalformedSse,  # noqa: UP007
          AnthropicMidstreamError, StallFirstToken, KeepaliveOnly, HangBeforeHeaders, WrongContentType, HealthFail,
          InferenceFail, MemoryGrowth, CpuBurn],
    Field(discriminator="mode"),
]
ANTHROPIC_MODES: TypeAdapter[AnthropicMode] = TypeAdapter(AnthropicMode)
ANTHROPIC_STREAM_MODES = (StallStream, TruncateStream, MalformedSse, AnthropicMidstreamError)
AnthropicStreamMode = StallStream | TruncateStream | MalformedSse | AnthropicMidstreamError
