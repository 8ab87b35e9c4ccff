"""The Locust load process: ``python -m harness.load.worker CONFIG_JSON``.

Runs in its own process because importing Locust monkey-patches the interpreter with
gevent. Protocol on stdio: it prints ``{"event": "ready"}`` once Locust is set up, waits
for a line on stdin, runs the load for ``duration`` seconds, and prints one JSON line per
request (``{"event": "request", ...}``) as they finish, then ``{"event": "done", ...}``.
"""

from __future__ import annotations

import json
import random
import signal
import sys
import time
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


def make_user(config: LoadConfig) -> type[FastHttpUser]:
    words = config.prompt_words()
    rng = random.Random(config.seed)

    class ChatUser(FastHttpUser):
        host = config.host
        wait_time = constant(config.wait)
        network_timeout = config.request_timeout
        connection_timeout = config.request_timeout

        def _body(self, stream: bool) -> dict[str, Any]:
            prompt = " ".join(rng.choice(words) for _ in range(12))
            body: dict[str, Any] = {"model": "fake-model", "max_tokens": config.max_tokens,
                                    "messages": [{"role": "user", "content": prompt}]}
            if stream:
                body["stream"] = True
            return body

        def chat(self) -> None:
            self._request("chat", stream=False)

        def chat_stream(self) -> None:
            self._request("chat_stream", stream=True)

        def _request(self, kind: str, stream: bool) -> None:
            start, began = time.time(), time.perf_counter()
            record: dict[str, Any] = {"event": "request", "ts": start, "kind": kind}
            with self.client.post(f"{config.base_path}/v1/chat/completions", json=self._body(stream), name=kind,
                                  stream=stream, catch_response=True) as response:
                error, ttft, body = self._outcome(response, stream, began)
                headers = response.headers or {}
                record.update(latency=time.perf_counter() - began, status=response.status_code or None,
                              replica=headers.get("x-chaosgate-replica"), upstream=headers.get("x-chaosgate-upstream"),
                              error=error)
                if ttft is not None:
                    record["ttft"] = ttft
                if error is not None and body:
                    record["body"] = body[:300]
                if error is None:
                    response.success()
                else:
                    response.failure(error)
            emit(record)

        def _outcome(self, response: FastResponse, stream: bool, began: float) -> tuple[str | None, float | None, str | None]:
            transport_error = getattr(response, "error", None)
            if response.status_code == 0:
                return classify(transport_error) if transport_error else "connect", None, None
            if response.status_code >= 400:
                try:
                    text = response.content.decode("utf-8", "replace") if response.content else ""
                except Exception as exc:  # noqa: BLE001 - the body itself failed to arrive
                    return classify(exc), None, None
                return ("http_5xx" if response.status_code >= 500 else "http_4xx"), None, text
            if not stream:
                try:
                    _ = response.content
                except Exception as exc:  # noqa: BLE001
                    return classify(exc), None, None
                return (classify(transport_error) if transport_error else None), None, None
            return self._read_stream(response, began)

        def _read_stream(self, response: FastResponse, began: float) -> tuple[str | None, float | None, str | None]:
            ttft: float | None = None
            buffer = ""
            try:
                # Small reads: read(n) blocks until n bytes arrive, which would hide the time to first token.
                for chunk in response.iter_content(chunk_size=128, decode_content=True):
                    buffer += chunk.decode("utf-8", "replace") if isinstance(chunk, bytes) else chunk
                    if ttft is None and '"content":"' in buffer.replace('"content":""', ""):
                        ttft = time.perf_counter() - began
                    if "data: [DONE]" in buffer:
                        return None, ttft, None
            except Exception as exc:  # noqa: BLE001 - any failure mid-stream is recorded, never raised
                return classify(exc), ttft, None
            return "stream_incomplete", ttft, buffer[-200:]

    # Locust task weights are integers: the mix's relative weights become per-mille.
    weights = {ChatUser.chat: config.mix.get("chat", 0.0), ChatUser.chat_stream: config.mix.get("chat_stream", 0.0)}
    total = sum(weights.values())
    ChatUser.tasks = {fn: round(1000 * w / total) for fn, w in weights.items() if round(1000 * w / total) > 0}
    return ChatUser


def main() -> None:
    config = LoadConfig.model_validate_json(sys.argv[1])
    user = make_user(config)
    env = Environment(user_classes=[user], host=config.host)
    runner = env.create_local_runner()
    emit({"event": "ready"})
    if not sys.stdin.readline():  # the harness closed stdin: it is gone, do nothing
        return
    gevent.signal_handler(signal.SIGTERM, runner.quit)
    runner.start(config.users, spawn_rate=config.spawn_rate)
    gevent.spawn_later(config.duration, runner.quit)
    runner.greenlet.join()
    emit({"event": "done", "requests": env.stats.total.num_requests, "failures": env.stats.total.num_failures})


if __name__ == "__main__":
    main()
