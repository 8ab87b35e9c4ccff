"""Every response of a fake names the replica that sent it; client retries are counted and logged.

``x-chaosgate-replica: <name>`` goes on every response, errors included, so the harness sees
which replica served a request whatever the gateway did. The official OpenAI clients send
``x-stainless-retry-count`` (0 on the first try, n on the n-th retry): counting it here tells
client retries apart from gateway retries, which reach the replica with the same count.

The attempt log (``--attempts-file``) gets one line per request as it arrives; with ``answers`` (the
LLM and Anthropic fakes) also one ``"type": "answer"`` line per answered request once its answer has
ended: the status, the ``retry-after`` it sent (as sent, and in seconds), the content tokens it
generated and sent (a stream cut short counts what went out), and the model it answered as.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fakes.retry_after import retry_after_seconds

REPLICA_HEADER = "x-chaosgate-replica"
REQUEST_ID_HEADER = "x-chaosgate-request"  # the load's id of each client request, kept by the gateways
RETRY_HEADER = b"x-stainless-retry-count"
log = logging.getLogger("fakes.requests")
# Whether a request is the gateway's health check, from its path, method and body (the body is read
# only when ``peek_body`` says the request may be one: e.g. an MCP health check's POST of initialize).
HealthRule = Callable[[str, str, bytes], bool]
ANSWER_KEY = "chaosgate.answer"  # the scope key of a request's AnswerNote, which the app fills in


@dataclass
class AnswerNote:
    """What the app tells the attempt log about its answer: the content tokens it sent, the model it named."""

    tokens: int = 0
    model: str | None = None


def answer_note(scope: Scope) -> AnswerNote:
    """The request's note (a throwaway one when the attempt log keeps no answers)."""
    note = scope.get(ANSWER_KEY)
    return note if isinstance(note, AnswerNote) else AnswerNote()


def is_health_path(path: str) -> bool:
    """The fakes' health endpoints: /health and everything under /health/."""
    return path == "/health" or path.startswith("/health/")


class AttemptLog:
    """Appends one JSON line per request to a file; one ``write`` per line, in append mode, so a
    restarted replica adds to what the previous process wrote and a killed one loses nothing written."""

    def __init__(self, path: str, replica: str, answers: bool = False) -> None:
        self.replica, self.answers = replica, answers
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def record(self, method: str, path: str, request_id: str | None, health: bool) -> None:
        self._write({"ts": round(time.time(), 6), "replica": self.replica, "method": method, "path": path,
                     "request_id": request_id, "health": health})

    def answer(self, started: float, request_id: str | None, path: str, status: int | None,
               headers: dict[str, str], note: AnswerNote) -> None:
        """One answered request: ``started`` is when its status line went out (Unix time), ``headers`` the
        answer's (lower-case names), ``note`` what the app said of it. The line is written when it ended."""
        raw, raw_ms = headers.get("retry-after"), headers.get("retry-after-ms")
        self._write({"type": "answer", "ts": round(started, 6), "ended": round(time.time(), 6),
                     "replica": self.replica, "path": path, "request_id": request_id, "status": status,
                     "retry_after": retry_after_seconds(raw, raw_ms, started),
                     "retry_after_header": raw, "retry_after_ms_header": raw_ms,
                     "tokens": note.tokens, "model": note.model})

    def _write(self, record: dict[str, Any]) -> None:
        os.write(self._fd, (json.dumps(record, separators=(",", ":")) + "\n").encode())

    def close(self) -> None:
        os.close(self._fd)


@dataclass
class Stats:
    """Requests a replica served (health checks excluded), by the client retry count they carried."""

    replica: str
    requests: int = 0
    retry_counts: Counter[int] = field(default_factory=Counter)

    def as_json(self) -> dict[str, Any]:
        return {"replica": self.replica, "requests": self.requests,
                "retried_requests": sum(n for count, n in self.retry_counts.items() if count > 0),
                "retry_counts": {str(count): n for count, n in sorted(self.retry_counts.items())}}


class ReplicaMiddleware:
    """Pure ASGI middleware (cheap, streaming-safe): stamps the replica header, counts requests and
    client retries, and turns an unexpected exception into the protocol's own error response."""

    def __init__(self, app: ASGIApp, stats: Stats, on_error: Callable[[], Response],
                 log_requests: bool = False, attempts: AttemptLog | None = None,
                 health_body: HealthRule | None = None, peek_body: Callable[[str, str], bool] | None = None) -> None:
        self.app, self.stats, self.on_error, self.log_requests = app, stats, on_error, log_requests
        self.attempts, self.health_body, self.peek_body = attempts, health_body, peek_body
        self.header = (REPLICA_HEADER.encode(), stats.replica.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        health = is_health_path(path)
        if not health and self.health_body is not None and self.peek_body is not None and self.peek_body(method, path):
            body, receive = await _peek(receive)
            health = self.health_body(method, path, body)
        request_id = _header(scope, REQUEST_ID_HEADER.encode())
        if self.attempts is not None:
            self.attempts.record(method, path, request_id, health)
        if not health:
            self._count(scope, path)
        started = False
        answered: dict[str, Any] = {}  # when the status line went out, the status, the headers
        keep_answer = self.attempts is not None and self.attempts.answers and not health
        if keep_answer:
            scope[ANSWER_KEY] = AnswerNote()

        async def send_stamped(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), self.header]
                if keep_answer:
                    answered.update(ts=time.time(), status=message.get("status"), headers={
                        k.decode("latin-1").lower(): v.decode("latin-1") for k, v in message["headers"]})
            await send(message)

        try:
            await self.app(scope, receive, send_stamped)
        except Exception:
            if started:
                raise
            log.exception("%s failed on %s", self.stats.replica, path)
            await self.on_error()(scope, receive, send_stamped)
        finally:
            if keep_answer and self.attempts is not None and answered:
                self.attempts.answer(answered["ts"], request_id, path, answered["status"], answered["headers"],
                                     answer_note(scope))

    def _count(self, scope: Scope, path: str) -> None:
        self.stats.requests += 1
        raw = b"0"
        for key, value in scope["headers"]:
            if key == RETRY_HEADER:
                raw = value
                break
        count = int(raw) if raw.strip().isdigit() else 0
        self.stats.retry_counts[count] += 1
        if count > 0 or self.log_requests:
            # One line per client retry: the attempts a gateway's own retries cannot explain.
            log.info("%s %s %s x-stainless-retry-count=%d", self.stats.replica, scope["method"], path, count)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _peek(receive: Receive) -> tuple[bytes, Receive]:
    """Read the whole request body, and a ``receive`` that hands it to the app again, then goes on."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()
    return body, replay
