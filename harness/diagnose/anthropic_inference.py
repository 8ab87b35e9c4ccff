"""Inference layer of Anthropic pools: one minimal message and one minimal streamed message on the
Messages API (POST /v1/messages), as a client of the gateway would send them. The walk and the
causes are the OpenAI layer's (harness/diagnose/inference.py); an answer is a ``message`` with a
``content`` list, and a stream is the API's events, ending with ``message_stop`` (an ``error`` event
mid-stream, a stream that stops sending deltas or sends only ``ping`` is broken)."""

from __future__ import annotations

import json
from typing import Any

from harness.diagnose.inference import Frame, InferenceLayer

ANTHROPIC_VERSION = "2023-06-01"   # the anthropic-version header every Messages API call carries


class AnthropicInferenceLayer(InferenceLayer):
    kind = "anthropic"
    path = "/v1/messages"
    api = "message"
    end_marker = "message_stop"
    headers = {"anthropic-version": ANTHROPIC_VERSION, "x-api-key": "chaosgate-probe"}

    def answered(self, body: Any) -> bool:
        return body["type"] == "message" and isinstance(body["content"], list)

    def frame(self, data: str) -> tuple[Frame, Any]:
        parsed = json.loads(data)
        kind = parsed.get("type") if isinstance(parsed, dict) else None
        if kind == "message_stop":
            return Frame.END, None
        if kind == "error":
            return Frame.ERROR, parsed.get("error")
        if kind == "content_block_delta":
            return Frame.TOKEN, parsed
        return Frame.OTHER, parsed
