"""Inference layer (OpenAI-compatible pools): one minimal chat completion and one minimal
streamed completion, as a client of the gateway would send them. Evidence: status, error
body, content type, time to answer, and whether the SSE stream parses and ends with [DONE]."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from harness.diagnose.base import (
    LayerResult, ProbeSettings, ProbeTarget, fail, http_client, ok, request_extensions, short, transport_failure,
)

PROMPT = [{"role": "user", "content": "ping"}]
STREAM_TOKENS = 8  # enough tokens for a stream to break after its first few


class InferenceLayer:
    name = "inference"

    def applies(self, target: ProbeTarget) -> bool:
        return target.cluster.kind == "openai"

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
            return fail(self.name, cause[0], f"chat completion: {cause[1]}")

    def _model(self, client: httpx.Client, target: ProbeTarget) -> str:
        try:
            data = client.get(target.url("/v1/models"), extensions=request_extensions(target)).json()
            return str(data["data"][0]["id"])
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError):
            return "chaosgate-probe"

    def _plain(self, client: httpx.Client, target: ProbeTarget, settings: ProbeSettings, model: str) -> LayerResult:
        body = {"model": model, "messages": PROMPT, "max_tokens": 1}
        began = time.perf_counter()
        try:
            response = client.post(target.url("/v1/chat/completions"), json=body, extensions=request_extensions(target))
        except httpx.TimeoutException:
            return fail(self.name, "inference_timeout", f"POST /v1/chat/completions (max_tokens 1): no answer within "
                        f"{settings.inference_timeout:g}s")
        took = time.perf_counter() - began
        kind = response.headers.get("content-type", "")
        seen = f"POST /v1/chat/completions → {response.status_code} in {took * 1000:.0f}ms"
        details: dict[str, Any] = {"status": response.status_code, "seconds": round(took, 3), "content_type": kind}
        if response.status_code != 200:
            return fail(self.name, "inference_failing", f"{seen}: {short(response.text, 120)!r}", **details)
        if not kind.startswith("application/json"):
            return fail(self.name, "wrong_content_type", f"{seen} with content-type {kind!r}, not application/json: "
                        f"{short(response.text, 80)!r}", **details)
        try:
            choices = response.json()["choices"]
            assert isinstance(choices, list) and choices
        except (ValueError, KeyError, TypeError, AssertionError):
            return fail(self.name, "inference_failing", f"{seen}, but no choices in the body: "
                        f"{short(response.text, 80)!r}", **details)
        if took > settings.slow_threshold:
            return fail(self.name, "inference_slow", f"{seen}: slower than {settings.slow_threshold:g}s for one token",
                        **details)
        return ok(self.name, seen, **details)

    def _stream(self, client: httpx.Client, target: ProbeTarget, settings: ProbeSettings, model: str) -> LayerResult:
        body = {"model": model, "messages": PROMPT, "max_tokens": STREAM_TOKENS, "stream": True}
        what = f"streamed completion (max_tokens {STREAM_TOKENS})"
        began = time.perf_counter()
        chunks, done = 0, False
        deadline = began + settings.inference_timeout
        try:
            with client.stream("POST", target.url("/v1/chat/completions"), json=body,
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
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        done = True
                        break
                    try:
                        frame = json.loads(data)
                    except ValueError:
                        return fail(self.name, "stream_broken", f"{what}: frame {chunks + 1} is not JSON: {data[:60]!r}")
                    if isinstance(frame, dict) and "error" in frame:
                        return fail(self.name, "stream_broken", f"{what}: an error frame after {chunks} chunks: "
                                    f"{short(json.dumps(frame['error']), 100)}")
                    chunks += 1
        except httpx.TimeoutException:
            return fail(self.name, "stream_broken", f"{what}: stalled after {chunks} chunks (nothing for "
                        f"{settings.inference_timeout:g}s)")
        took = time.perf_counter() - began
        if not done:
            why = "stalled" if took >= settings.inference_timeout else "ended"
            return fail(self.name, "stream_broken", f"{what}: {why} after {chunks} chunks without data: [DONE]")
        if took > settings.slow_threshold + STREAM_TOKENS * 0.1:
            return fail(self.name, "inference_slow", f"{what}: {chunks} chunks took {took * 1000:.0f}ms")
        return ok(self.name, f"{what}: {chunks} chunks and [DONE] in {took * 1000:.0f}ms")
