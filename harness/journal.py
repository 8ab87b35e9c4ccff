"""The run journal: one append-only JSONL file, the single source of truth of a run.

Every line is one event with a ``type`` from EVENT_TYPES and a wall-clock ``ts`` (Unix
seconds). Verdicts and reports are pure functions of this file, so a past run can be
judged again and a crashed run still leaves everything it saw up to the crash.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import IO, Any, Literal, get_args

from harness.errors import JournalError

EventType = Literal[
    "run.started",      # header: scenario name, file, text, seed, versions
    "stack.ready",      # endpoints, replicas and the rendered gateway config
    "load.started",     # the origin (t = 0) of every scenario time
    "request",          # one client request through the gateway (chat, or a step of an MCP session: mcp_*)
    "attempt",          # one try of a request reached a replica (source replica: its fake saw it arrive) or was
                        # sent to it (source gateway: the gateway's log of each upstream try); harness/attempts.py
    "health",           # the gateway's view of one replica changed (or first sample)
    "hosts",            # every address the gateway holds, with its flags, when that changed (DNS adds and removes hosts)
    "fault.started",    # a fault was injected on its replicas
    "fault.cleared",    # a fault was cleared
    "diagnosis",        # chaosgate diagnose walked one replica (a `diagnosis` expectation asked): cause, layer, evidence
    "process.exited",   # a replica process ended: status, signal, oom (the kernel's OOM counter went up)
    "process.restarted",  # the supervisor started a dead replica again (same port), after its backoff
    "process.ready",    # a restarted replica answers on its health and control endpoints
    "gateway.exited",   # the gateway process ended during the run: pid, status, signal (harness/gateway_watch.py)
    "gateway.health_rounds",  # every round of background checks the gateway ran (LiteLLM): round, started, written
    "load.finished",    # the load generator exited
    "warning",          # something the reader of the report should know
    "run.finished",     # the last line of a run that ended in an orderly way
]
EVENT_TYPES: frozenset[str] = frozenset(get_args(EventType))


class JournalWriter:
    """Appends events to a journal file; safe to call from several threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: IO[str] = path.open("w", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, type: EventType, ts: float | None = None, **fields: Any) -> dict[str, Any]:
        """Append one event (``ts`` defaults to now) and flush it to disk at once."""
        event = {"type": type, "ts": time.time() if ts is None else ts, **fields}
        line = json.dumps(event, separators=(",", ":"), default=str)
        with self._lock:
            if self._file.closed:
                return event
            self._file.write(line + "\n")
            self._file.flush()
        return event

    def close(self) -> None:
        with self._lock:
            self._file.close()


def read_journal(path: Path) -> list[dict[str, Any]]:
    """All events of a journal; a torn last line (crash mid-write) is dropped, not fatal."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise JournalError(f"{path}: cannot read journal: {exc.strerror}") from exc
    events: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):
                break
            raise JournalError(f"{path}:{number}: not a JSON event: {exc.msg}") from exc
        if not isinstance(event, dict) or event.get("type") not in EVENT_TYPES:
            raise JournalError(f"{path}:{number}: not a chaosgate event")
        events.append(event)
    if not events or events[0]["type"] != "run.started":
        raise JournalError(f"{path}: not a chaosgate journal (no run.started header)")
    return events
