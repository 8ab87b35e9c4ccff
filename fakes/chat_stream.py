"""The SSE body of a streamed chat completion, and the stream faults that break it.

Frames as the real API sends them: a role chunk, one ``chat.completion.chunk`` per token
(``choices[].delta.content``), a chunk with ``finish_reason: "stop"``, the usage chunk
(``"choices": []``) when asked for, then ``data: [DONE]``. A stream fault acts once
``after_tokens`` tokens are out (see fakes.llm_modes).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fakes.identity import AnswerNote
from fakes.llm_modes import KeepaliveOnly, MalformedSse, MidstreamError, StallFirstToken, StallStream, StreamMode

MIN_SLEEP_S = 0.0005
KEEPALIVE = b": keep-alive\n\n"  # an SSE comment: clients skip it, proxies see bytes flow


def frame(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


async def pause(seconds: float) -> None:
    """Sleep, except for delays below the event loop's timer resolution (uvloop's is 1 ms), which
    would round up to a whole tick: then only let other tasks run. Token schedules are absolute,
    so a skipped sub-millisecond pause never accumulates into drift."""
    await asyncio.sleep(seconds if seconds >= MIN_SLEEP_S else 0)


async def chat_stream(head: dict[str, Any], tokens: list[str], usage: dict[str, int] | None,
                      ttft: float, token_s: float, fault: StreamMode | None,
                      sent: AnswerNote | None = None) -> AsyncIterator[bytes]:
    """The frames of one streamed reply: ``head`` is what every chunk repeats (id, object, created,
    model); ``usage`` is None unless ``stream_options.include_usage`` was set; ``sent`` counts the
    content tokens that went out (the attempt log's answer line)."""
    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        payload = {**head, "choices": [choice]}
        if usage is not None:
            payload["usage"] = None  # OpenAI sends usage: null on every chunk but the last
        return frame(payload)

    await pause(ttft)
    yield chunk({"role": "assistant", "content": ""})
    start = time.monotonic()
    for i, token in enumerate(tokens):
        if fault is not None and i == fault.after_tokens:
            async for broken in _fault_frames(fault, head):
                yield broken
            if not isinstance(fault, MalformedSse):
                return
        # Sleep until this token's slot on a fixed schedule, so delays do not drift.
        await pause(start + (i + 1) * token_s - time.monotonic())
        yield chunk({"content": token})
        if sent is not None:
            sent.tokens += 1
    if fault is not None and fault.after_tokens >= len(tokens):
        async for broken in _fault_frames(fault, head):
            yield broken
        if not isinstance(fault, MalformedSse):
            return
    yield chunk({}, "stop")
    if usage is not None:
        yield frame({**head, "choices": [], "usage": usage})
    yield b"data: [DONE]\n\n"


async def _fault_frames(fault: StreamMode, head: dict[str, Any]) -> AsyncIterator[bytes]:
    """What a stream fault sends at its point. The stream ends after them, except after a
    malformed frame, which an otherwise normal stream carries (truncate_stream sends nothing)."""
    if isinstance(fault, StallStream):
        await asyncio.Event().wait()  # never set: Starlette cancels us when the client leaves
    elif isinstance(fault, MalformedSse):
        yield b'data: {"id":"' + str(head["id"]).encode() + b'","object":"chat.completion.chunk","choices":[{\n\n'
    elif isinstance(fault, MidstreamError):
        yield frame({"error": {"message": "The server had an error while processing your request.",
                               "type": "server_error", "param": None, "code": None}})


async def silent_stream(fault: StallFirstToken | KeepaliveOnly, keepalive: bytes = KEEPALIVE,
                        opening: bytes = b"") -> AsyncIterator[bytes]:
    """A stream that never sends a token: ``opening`` (the frames the provider sends before its first
    token), then nothing (stall_first_token) or a ``keepalive`` frame every ``interval`` (keepalive_only)."""
    if opening:
        yield opening
    if isinstance(fault, StallFirstToken):
        await asyncio.Event().wait()  # never set: Starlette cancels us when the client leaves
        return
    while True:
        yield keepalive
        await asyncio.sleep(fault.interval)
