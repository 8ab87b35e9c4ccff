"""Inference layer (OpenAI-compatible pools): one minimal chat completion and one minimal
streamed completion, as a client of the gateway would send them. Evidence: status, error
body, content type, time to answer, and whether the SSE stream parses and ends with [DONE].

The walk is the same for every provider's API; a provider's layer (harness/diagnose/
anthropic_inference.py) names its path and headers and reads its answers and stream frames."""

from __future__ import annotations

import json
import time
from enum import Enum
from typing import Any

import httpx

from harness.diagnose.base import (
    LayerResult, ProbeSettings, ProbeTarget, fail, http_client, ok, request_extensions, short, transport_failure,
)

PROMPT = [{"role": "user", "content": "ping"}]
STREAM_TOKENS = 8  # enough tokens for a stream to break after its first few


class Frame(Enum):
    """What one SSE data frame of a streamed answer is."""

    TOKEN = "token"
    END = "end"       # the stream's last frame: [DONE], message_stop
    ERROR = "error"   # an error frame mid-stream
    OTHER = "other"   # bookkeeping: message_start, ping, ...


class InferenceLayer:
    name = "inference"
    kind = "openai"                    # the pools (upstream kind) this layer probes
    path = "/v1/chat/completions"
    api = "chat completion"            # what the evidence calls one answer
    end_marker = "data: [DONE]"        # what the evidence calls the stream's proper end
    headers: dict[str, str] = {}

    def applies(self, target: ProbeTarget) -> bool:
        return target.cluster.kind == self.kind

    def answered(self, body: Any) -> bool:
        """Whether a 200's JSON body is a real answer."""
        choices = body["choices"]
        return isinstance(choices, list) and bool(choices)

    def frame(self, data: str) -> tuple[Frame, Any]:
        """One SSE ``data:`` payload (raises ValueError when it is not JSON)."""
        if data == "[DONE]":
            return Frame.END, None
        parsed = json.loads(data)
        if isinstance(parsed, dict) and "error" in parsed:
            return Frame.ERROR, parsed["error"]
        return Frame.TOKEN, parsed

    def probe(self, target: ProbeTarget, settings: ProbeSettings) -> LayerResult:
        try:
            with http_client(target, settings.inference_timeout) as client:
                model = settings.model or self._model(client, target)
                plain = self._plain(client, target, settings, model)
                if not plain.ok:
                    return plain
                streamed = self._stream(client, target, settings, model)
                if not streamed.ok:
                    return streamed
                return ok(self.name, f"{plain.evidence}; {streamed.evidence}", **plain.details)
        except httpx.HTTPError as exc:
            cause = transport_failure(exc) or ("inference_failing", f"{type(exc).__name__}: {exc}")
            return fail(self.name, cause[0], f"{self.api}: {cause[1]}")

    def _model(self, client: httpx.Client, target: ProbeTarget) -> str:
        try:
            data = client.get(target.url("/v1/models"), headers=self.headers,
                              extensions=request_extensions(target)).json()
            return str(data["data"][0]["id"])
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError):
            return "chaosgate-probe"

    def _plain(self, client: httpx.Client, target: ProbeTarget, settings: ProbeSettings, model: str) -> LayerResult:
        body = {"model": model, "messages": PROMPT, "max_tokens": 1}
        began = time.perf_counter()
        try:
            response = client.post(target.url(self.path), json=body, headers=self.headers,
                                   extensions=request_extensions(target))
        except httpx.TimeoutException:
            return fail(self.name, "inference_timeout", f"POST {self.path} (max_tokens 1): no answer within "
                        f"{settings.inference_timeout:g}s")
        took = time.perf_counter() - began
        kind = response.headers.get("content-type", "")
        seen = f"POST {self.path} → {response.status_code} in {took * 1000:.0f}ms"
        details: dict[str, Any] = {"status": response.status_code, "seconds": round(took, 3), "content_type": kind}
        if response.status_code != 200:
            return fail(self.name, "inference_failing", f"{seen}: {short(response.text, 120)!r}", **details)
        if not kind.startswith("application/json"):
            return fail(self.name, "wrong_content_type", f"{seen} with content-type {kind!r}, not application/json: "
                        f"{short(response.text, 80)!r}", **details)
        try:
            answered = self.answered(response.json())
        except (ValueError, KeyError, TypeError):
            answered = False
        if not answered:
            return fail(self.name, "inference_failing", f"{seen}, but no answer in the body: "
                        f"{short(response.text, 80)!r}", **details)
        if took > settings.slow_threshold:
            return fail(self.name, "inference_slow", f"{seen}: slower than {settings.slow_threshold:g}s for one token",
                        **details)
        return ok(self.name, seen, **details)

    def _stream(self, client: httpx.Client, target: ProbeTarget, settings: ProbeSettings, model: str) -> LayerResult:
        body = {"model": model, "messages": PROMPT, "max_tokens": STREAM_TOKENS, "stream": True}
        what = f"streamed {self.api} (max_tokens {STREAM_TOKENS})"
        began = time.perf_counter()
        chunks, done = 0, False
        deadline = began + settings.inference_timeout
        try:
            with client.stream("POST", target.url(self.path), json=body, headers=self.headers,
                               extensions=request_extensions(target)) as response:
                kind = response.headers.get("content-type", "")
                if response.status_code != 200:
                    response.read()
                    return fail(self.name, "inference_failing", f"{what} → {response.status_code}: "
                                f"{short(response.text, 100)!r}")
                if not kind.startswith("text/event-stream"):
                    return fail(self.name, "wrong_content_type", f"{what} → 200 with content-type {kind!r}, not "
                                "text/event-stream")
                for line in response.iter_lines():
                    if time.perf_counter() > deadline:
                        break
                    if not line.startswith("data:"):
                        continue   # event names, SSE comments (keep-alives), blank separators
                    data = line[5:].strip()
                    try:
                        frame, payload = self.frame(data)
                    except ValueError:
                        return fail(self.name, "stream_broken", f"{what}: frame {chunks + 1} is not JSON: {data[:60]!r}")
                    if frame is Frame.END:
                        done = True
                        break
                    if frame is Frame.ERROR:
                        return fail(self.name, "stream_broken", f"{what}: an error frame after {chunks} chunks: "
                                    f"{short(json.dumps(payload), 100)}")
                    chunks += frame is Frame.TOKEN
        except httpx.TimeoutException:
            return fail(self.name, "stream_broken", f"{what}: stalled after {chunks} chunks (nothing for "
                        f"{settings.inference_timeout:g}s)")
        took = time.perf_counter() - began
        if not done:
            why = "stalled" if took >= settings.inference_timeout else "ended"
            return fail(self.name, "stream_broken", f"{what}: {why} after {chunks} chunks without {self.end_marker}")
        if took > settings.slow_threshold + STREAM_TOKENS * 0.1:
            return fail(self.name, "inference_slow", f"{what}: {chunks} chunks took {took * 1000:.0f}ms")
        return ok(self.name, f"{what}: {chunks} chunks and {self.end_marker} in {took * 1000:.0f}ms")
