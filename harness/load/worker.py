"""The Locust load process: ``python -m harness.load.worker CONFIG_JSON``.

Runs in its own process because importing Locust monkey-patches the interpreter with
gevent. Protocol on stdio: it prints ``{"event": "ready"}`` once Locust is imported, waits
for a line on stdin (``go``, or ``{"host": ..., "model": ...}``: the harness starts this process while the
stack comes up, before the gateway's address is known), runs the load for ``duration`` seconds, and prints one JSON line per
request (``{"event": "request", ...}``) as they finish, then ``{"event": "done", ...}``.

Every request carries ``x-chaosgate-request: <id>`` (unique in the run), and its record the same
``id``: the fakes log each attempt that reaches them with it, so a gateway's retries of one client
request can be matched to it.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import signal
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import gevent
from locust import FastHttpUser, constant, task  # noqa: F401 - task kept for readers
from locust.contrib.fasthttp import FastResponse
from locust.env import Environment

from harness.load.config import LoadConfig

_ERROR_KINDS = {
    "ConnectionRefusedError": "connect",
    "ConnectionResetError": "reset",
    "BrokenPipeError": "reset",
    "RemoteDisconnected": "reset",
    "TimeoutError": "timeout",
    "timeout": "timeout",
    "Timeout": "timeout",
    "ConnectionTimeout": "timeout",
}


def classify(exc: BaseException) -> str:
    """A short error kind for an exception raised while talking to the gateway."""
    for cls in type(exc).__mro__:
        if cls.__name__ in _ERROR_KINDS:
            return _ERROR_KINDS[cls.__name__]
    text = str(exc).lower()
    if "timed out" in text or "timeout" in text:
        return "timeout"
    if "refused" in text:
        return "connect"
    return "reset"


def emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record, separators=(",", ":")) + "\n")
    sys.stdout.flush()


@dataclass(frozen=True)
class Outcome:
    """How one response ended, as the journal records it."""

    error: str | None = None
    nbytes: int = 0
    ttft: float | None = None
    body: str | None = None
    model: str | None = None  # the answer's model field (what served it, behind a gateway that falls back)


def _read_body(response: FastResponse) -> Outcome:
    """A whole (non-streamed, or failed) response."""
    transport_error = getattr(response, "error", None)
    if response.status_code == 0:
        return Outcome(error=classify(transport_error) if transport_error else "connect")
    try:
        content = response.content or b""
    except Exception as exc:  # noqa: BLE001 - the body itself failed to arrive
        return Outcome(error=classify(exc))
    if response.status_code >= 400:
        return Outcome(error="http_5xx" if response.status_code >= 500 else "http_4xx", nbytes=len(content),
                       body=content.decode("utf-8", "replace"))
    return Outcome(error=classify(transport_error) if transport_error else None, nbytes=len(content),
                   model=_model_of(content.decode("utf-8", "replace")))


MODEL_FIELD = re.compile(r'"model"\s*:\s*"((?:[^"\\]|\\.)*)"')


def _model_of(text: str) -> str | None:
    """The first ``"model": "..."`` of a JSON answer or an SSE chunk (every chunk of a chat stream repeats it)."""
    found = MODEL_FIELD.search(text)
    if found is None:
        return None
    try:
        model = json.loads(f'"{found.group(1)}"')
    except ValueError:
        return None
    return model if isinstance(model, str) else None


def _read_stream(response: FastResponse, began: float) -> Outcome:
    """An SSE stream, read as it arrives: time to the first token, and whether [DONE] came."""
    ttft: float | None = None
    model: str | None = None
    buffer = ""
    nbytes = 0
    try:
        # Small reads: read(n) blocks until n bytes arrive, which would hide the time to first token.
        for chunk in response.iter_content(chunk_size=128, decode_content=False):
            nbytes += len(chunk)
            buffer = (buffer + chunk.decode("utf-8", "replace"))[-4096:]
            if ttft is None and '"content":"' in buffer.replace('"content":""', ""):
                ttft = time.perf_counter() - began
            if model is None:
                model = _model_of(buffer)
            if "data: [DONE]" in buffer:
                return Outcome(nbytes=nbytes, ttft=ttft, model=model)
    except Exception as exc:  # noqa: BLE001 - any failure mid-stream is recorded, never raised
        return Outcome(error=classify(exc), nbytes=nbytes, ttft=ttft)
    return Outcome(error="stream_incomplete", nbytes=nbytes, ttft=ttft, body=buffer[-200:])


REQUEST_ID_HEADER = "x-chaosgate-request"  # the fakes log it with each attempt (fakes/identity.py)


def _message_outcome(client: Any, config: LoadConfig, stream: bool, request_id: str, prompt: str,
                     began: float) -> tuple[int | None, Mapping[str, str], Outcome]:
    """One message of the anthropic persona, through the official ``anthropic`` client (no retries of
    its own): the status, the response headers, and how it ended, as the journal records it."""
    import anthropic  # imported by main() before the load starts, when the persona has a weight

    kwargs: dict[str, Any] = {"model": config.anthropic_model, "max_tokens": config.max_tokens,
                              "messages": [{"role": "user", "content": prompt}],
                              "extra_headers": {REQUEST_ID_HEADER: request_id}}
    status: int | None = None
    headers: Mapping[str, str] = {}
    try:
        if not stream:
            raw = client.messages.with_raw_response.create(**kwargs)
            status, headers = raw.status_code, raw.headers
            message = raw.parse()
            return status, headers, Outcome(nbytes=len(raw.http_response.content), model=message.model)
        with client.messages.with_streaming_response.create(stream=True, **kwargs) as response:
            status, headers = response.status_code, response.headers
            ttft: float | None = None
            model: str | None = None
            for event in response.parse():
                if event.type == "message_start":
                    model = event.message.model
                if ttft is None and event.type == "content_block_delta":
                    ttft = time.perf_counter() - began
                if event.type == "message_stop":
                    return status, headers, Outcome(ttft=ttft, model=model)
            return status, headers, Outcome(error="stream_incomplete", ttft=ttft, body="no message_stop event")
    except anthropic.APIStatusError as exc:  # an HTTP error, or an error event in a 200 stream
        code = exc.status_code
        if status == 200:  # the stream had begun: an `error` event ended it
            return status, headers, Outcome(error="stream_incomplete", body=json.dumps(exc.body)[:300])
        kind = "http_5xx" if code >= 500 else "http_4xx"
        return code, exc.response.headers, Outcome(error=kind, body=json.dumps(exc.body)[:300])
    except anthropic.APITimeoutError:
        return status, headers, Outcome(error="timeout")
    except anthropic.APIConnectionError as exc:
        return status, headers, Outcome(error=classify(exc.__cause__ or exc))
    except Exception as exc:  # noqa: BLE001 - a broken stream or body is recorded, never raised
        return status, headers, Outcome(error=classify(exc), body=f"{type(exc).__name__}: {exc}"[:300])


def _record(request_id: str, kind: str, start: float, latency: float, status: int | None,
            headers: Mapping[str, str], outcome: Outcome, upstream: str | None) -> dict[str, Any]:
    """The journal's line for one request: when it began, how long it took, its status and error kind,
    and the replica that served it (the fakes' header, passed on by the gateway)."""
    record: dict[str, Any] = {
        "event": "request", "ts": start, "id": request_id, "kind": kind, "latency": latency,
        "status": status, "bytes": outcome.nbytes, "error": outcome.error,
        "replica": headers.get("x-chaosgate-replica"),
        "upstream": upstream}  # LoadConfig.upstream_of: the gateway's own header, else x-chaosgate-upstream
    if outcome.ttft is not None:
        record["ttft"] = outcome.ttft
    if outcome.error is not None and outcome.body:
        record["body"] = outcome.body[:300]
    if outcome.model is not None and outcome.error is None:
        record["model"] = outcome.model
    if status is not None and status >= 400:  # when to come back, as the answer said (the gateway's, or passed on)
        for header, key in (("retry-after", "retry_after"), ("retry-after-ms", "retry_after_ms")):
            if (value := headers.get(header)) is not None:
                record[key] = value
    return record


def make_user(config: LoadConfig, sink: Callable[[dict[str, Any]], None] = emit) -> type[FastHttpUser]:
    """The Locust user class of the chat personas; each request's record goes to ``sink`` (stdout by default; a
    distributed worker's buffer: harness/load/node.py)."""
    words = config.prompt_words()
    rng = random.Random(config.seed)
    run_prefix = uuid.uuid4().hex[:8]  # this load process's requests, unique beside any other's
    sequence = itertools.count(1)

    class ChatUser(FastHttpUser):
        host = config.host
        anthropic_client: Any = None  # each user's own anthropic client, made on its first message
        wait_time = constant(config.wait)
        network_timeout = config.request_timeout
        connection_timeout = config.request_timeout

        def _body(self, stream: bool) -> dict[str, Any]:
            prompt = " ".join(rng.choice(words) for _ in range(12))
            body: dict[str, Any] = {"model": config.model, "max_tokens": config.max_tokens,
                                    "messages": [{"role": "user", "content": prompt}]}
            if stream:
                body["stream"] = True
            return body

        def chat(self) -> None:
            self._request("chat", stream=False)

        def chat_stream(self) -> None:
            self._request("chat_stream", stream=True)

        def anthropic(self) -> None:
            self._message("anthropic", stream=False)

        def anthropic_stream(self) -> None:
            self._message("anthropic_stream", stream=True)

        def _message(self, kind: str, stream: bool) -> None:
            if self.anthropic_client is None:
                import anthropic

                self.anthropic_client = anthropic.Anthropic(
                    base_url=f"{config.host}{config.anthropic_path or ''}", api_key="chaosgate", max_retries=0,
                    default_headers=config.headers,
                    timeout=config.request_timeout)
            request_id = f"{run_prefix}-{next(sequence)}"
            prompt = " ".join(rng.choice(words) for _ in range(12))
            start, began = time.time(), time.perf_counter()
            # The whole request within request_timeout: the client's own timeout is per read, and a stream of
            # keep-alive pings (which the client skips) would otherwise never end.
            with gevent.Timeout(config.request_timeout, TimeoutError("request_timeout")):
                status, headers, outcome = _message_outcome(self.anthropic_client, config, stream, request_id,
                                                            prompt, began)
            latency = time.perf_counter() - began
            self.environment.events.request.fire(
                request_type="POST", name=kind, response_time=latency * 1000, response_length=outcome.nbytes,
                response=None, context={}, exception=None if outcome.error is None else RuntimeError(outcome.error))
            sink(_record(request_id, kind, start, latency, status, headers, outcome, config.upstream_of(headers)))

        def _request(self, kind: str, stream: bool) -> None:
            request_id = f"{run_prefix}-{next(sequence)}"
            start, began = time.time(), time.perf_counter()
            with self.client.post(f"{config.base_path}/v1/chat/completions", json=self._body(stream), name=kind,
                                  stream=stream, catch_response=True,
                                  headers={**config.headers, REQUEST_ID_HEADER: request_id}) as response:
                outcome = _read_stream(response, began) if stream and response.status_code == 200 \
                    else _read_body(response)
                record = _record(request_id, kind, start, time.perf_counter() - began, response.status_code or None,
                                 response.headers or {}, outcome, config.upstream_of(response.headers or {}))
                if outcome.error is None:
                    response.success()
                else:
                    response.failure(outcome.error)
            sink(record)

    # Locust task weights are integers: the mix's relative weights become per-mille.
    weights = {ChatUser.chat: config.mix.get("chat", 0.0), ChatUser.chat_stream: config.mix.get("chat_stream", 0.0),
               ChatUser.anthropic: config.mix.get("anthropic", 0.0),
               ChatUser.anthropic_stream: config.mix.get("anthropic_stream", 0.0)}
    total = sum(weights.values())
    # Locust accepts a {task: weight} dict here although its annotation says list.
    ChatUser.tasks = {fn: round(1000 * w / total)  # type: ignore[assignment]
                      for fn, w in weights.items() if round(1000 * w / total) > 0}
    return ChatUser


def main() -> None:
    config = LoadConfig.model_validate_json(sys.argv[1])
    config.prompt_words()  # Faker's import, before the go line (the users' prompts are made from it)
    if config.mix.get("anthropic", 0) > 0 or config.mix.get("anthropic_stream", 0) > 0:
        import anthropic  # noqa: F401 - its import (about 1 s), before the go line, not in the load's first second
    emit({"event": "ready"})
    line = sys.stdin.readline()
    if not line:  # the harness closed stdin: it is gone, do nothing
        return
    config = config.aimed(line)  # the gateway's address, known only once the stack is up
    user = make_user(config)
    env = Environment(user_classes=[user], host=config.host)
    runner = env.create_local_runner()
    gevent.signal_handler(signal.SIGTERM, runner.quit)
    runner.start(config.users, spawn_rate=config.spawn_rate)
    # The hub's clock was last read before the blocking wait on stdin; without this, the load
    # would end early by however long the harness took to say "start".
    gevent.get_hub().loop.update_now()
    gevent.spawn_later(config.duration, runner.quit)
    runner.greenlet.join()
    emit({"event": "done", "requests": env.stats.total.num_requests, "failures": env.stats.total.num_failures})
    # Everything is said (emit flushes): exit now, not after the interpreter's 0.1 s of finalization, which
    # the run would wait for.
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
