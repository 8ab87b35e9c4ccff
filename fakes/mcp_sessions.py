"""MCP sessions of one replica: issued on ``initialize``, ended by DELETE, a fault, or idleness."""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

MAX_SESSIONS = 10_000  # the oldest are dropped beyond this, so a long load cannot grow memory forever


@dataclass
class Session:
    id: str
    protocol_version: str
    last_seen: float
    initialized: bool = False  # the client sent notifications/initialized


class Sessions:
    """Live sessions by id; one idle longer than ``ttl_s`` is expired (a request naming it gets 404)."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._live: OrderedDict[str, Session] = OrderedDict()
        self.expired = 0

    def __len__(self) -> int:
        self.sweep()
        return len(self._live)

    def sweep(self) -> None:
        """End every session idle past the TTL (the least recently used come first)."""
        cutoff = time.monotonic() - self.ttl_s
        while self._live:
            oldest = next(iter(self._live.values()))
            if oldest.last_seen >= cutoff:
                return
            self._live.popitem(last=False)
            self.expired += 1

    def create(self, protocol_version: str) -> Session:
        self.sweep()
        # Visible ASCII only (0x21-0x7E), as the transport requires; unguessable.
        session = Session(secrets.token_hex(16), protocol_version, time.monotonic())
        self._live[session.id] = session
        while len(self._live) > MAX_SESSIONS:
            self._live.popitem(last=False)
        return session

    def get(self, session_id: str) -> Session | None:
        """The live session, touched; None if unknown or expired (an expired one is removed)."""
        session = self._live.get(session_id)
        if session is None:
            return None
        now = time.monotonic()
        if now - session.last_seen > self.ttl_s:
            self.end(session_id)
            self.expired += 1
            return None
        session.last_seen = now
        self._live.move_to_end(session_id)
        return session

    def end(self, session_id: str) -> bool:
        return self._live.pop(session_id, None) is not None
