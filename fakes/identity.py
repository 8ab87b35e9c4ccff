"""Every response of a fake names the replica that sent it; client retries are counted and logged.

``x-chaosgate-replica: <name>`` goes on every response, errors included, so the harness sees
which replica served a request whatever the gateway did. The official OpenAI clients send
``x-stainless-retry-count`` (0 on the first try, n on the n-th retry): counting it here tells
client retries apart from gateway retries, which reach the replica with the same count.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REPLICA_HEADER = "x-chaosgate-replica"
RETRY_HEADER = b"x-stainless-retry-count"
log = logging.getLogger("fakes.requests")


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
                 log_requests: bool = False) -> None:
        self.app, self.stats, self.on_error, self.log_requests = app, stats, on_error, log_requests
        self.header = (REPLICA_HEADER.encode(), stats.replica.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path != "/health" and not path.startswith("/health/"):
            self._count(scope, path)
        started = False

        async def send_stamped(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), self.header]
            await send(message)

        try:
            await self.app(scope, receive, send_stamped)
        except Exception:
            if started:
                raise
            log.exception("%s failed on %s", self.stats.replica, path)
            await self.on_error()(scope, receive, send_stamped)

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
