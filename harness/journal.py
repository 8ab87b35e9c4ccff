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
from collections.abc import Callable
from typing import IO, Any, Literal, get_args

from harness.errors import JournalError, not_utf8
from harness.journal_events import check_event, found

EventType = Literal[
    "run.started",      # header: scenario name, file, text, seed, versions
    "stack.ready",      # endpoints, replicas and the rendered gateway config
    "load.started",     # the origin (t = 0) of every scenario time
    "request",          # one client request through the gateway (chat, or a step of an MCP session: mcp_*)
    "attempt",          # one try of a request reached a replica (source replica: its fake saw it arrive) or was
                        # sent to it (source gateway: the gateway's log of each upstream try); harness/attempts.py
    "attempt.answer",   # a fake answered a try: status, retry_after (seconds) it sent, tokens it generated, model
    "health",           # the gateway's view of one replica changed (or first sample)
    "gateway.health",   # the gateway's own stamp of a health change (its event log): address, healthy, what
                        # (harness/gateway_events.py); the timeline moves each polled change to it
    "hosts",            # every address the gateway holds, with its flags, when that changed (DNS adds and removes hosts)
    "fault.started",    # a fault was injected on its replicas
    "fault.cleared",    # a fault was cleared
    "diagnosis",        # chaosgate diagnose walked one replica (a `diagnosis` expectation asked): cause, layer, evidence
    "process.exited",   # a replica process ended: status, signal, oom (the kernel's OOM counter went up)
    "process.restarted",  # the supervisor started a dead replica again (same port), after its backoff
    "process.ready",    # a restarted replica answers on its health and control endpoints
    "gateway.exited",   # the gateway process ended during the run: pid, status, signal (harness/gateway_watch.py)
    "gateway.health_rounds",  # every round of background checks the gateway ran (LiteLLM): round, started, written
    "load.master",      # distributed load: the Locust master's address (docs/distributed.md)
    "load.worker",      # distributed load: a worker joined: id, host, pid, clock offset and round trip (seconds)
    "load.worker_lost", # distributed load: a worker died mid-run (the run fails saying which)
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


MAX_PROBLEMS = 20   # a journal with more malformed lines names the first ones and counts the rest
RUN_SPAN = 86400.0  # seconds: every event of a run lies within a day after its run.started (a load lasts <= 1 h)
CLOCK_SLACK = 60.0  # seconds an event may be stamped before run.started (clock steps)


def read_journal(path: Path, warn: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """All events of a journal, each checked against its type's model (harness/journal_events.py).

    A last line that is not JSON (a run killed mid-write) is skipped: ``warn`` is told, and a
    ``warning`` event saying so ends the events, so the report shows it too. Any other malformed
    line makes the whole journal unreadable: JournalError names every such line (file:line, the
    field, what was expected and what was found), and nothing is judged from it.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise JournalError(f"{path}: cannot read journal: {exc.strerror}") from exc
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        if exc.reason != "unexpected end of data":
            line, column, message = not_utf8(data, exc)
            raise JournalError(f"{path}:{line}:{column}: {message}; is this a chaosgate journal?") from None
        lines = data[:exc.start].decode("utf-8").splitlines()  # killed while writing a character: a torn line
    numbers = [n for n, line in enumerate(lines, start=1) if line.strip()]
    events: list[dict[str, Any]] = []
    problems: list[str] = []
    torn: str | None = None
    for number in numbers:
        try:
            event = json.loads(lines[number - 1])
        except (json.JSONDecodeError, RecursionError) as exc:
            if number == numbers[-1]:
                torn = f"{path}:{number}: warning: the last line is cut short (the run was killed while writing it); skipped"
                break
            problems.append(f"{path}:{number}: not a JSON event: {getattr(exc, 'msg', 'nested too deeply')}; "
                            "expected one JSON object per line")
            continue
        if not isinstance(event, dict):
            problems.append(f"{path}:{number}: expected a JSON object (one event per line), got {found(event)}")
            continue
        type = event.get("type")
        known = isinstance(type, str) and type in EVENT_TYPES
        where = f"{path}:{number}: {type}" if known else f"{path}:{number}"
        if number == numbers[0] and known and type != "run.started":
            problems.append(f"{where}: expected the run.started header first (no run.started header); is this a chaosgate journal?")
        else:
            problems += [f"{where}: {problem}" for problem in check_event(event)]
        events.append(event)
    if not problems and not events:
        raise JournalError(f"{path}: not a chaosgate journal (no run.started header): "
                           + ("its only line is cut short" if torn else "it holds no events"))
    if not problems:
        problems += _times_out_of_range(path, numbers, events)
    if problems:
        more = len(problems) - MAX_PROBLEMS
        raise JournalError("\n".join(problems[:MAX_PROBLEMS] + ([f"{path}: ... and {more} more"] if more > 0 else [])))
    if torn is not None:
        if warn is not None:
            warn(torn)
        events.append({"type": "warning", "ts": max(e["ts"] for e in events), "message": torn})
    return events


def _times_out_of_range(path: Path, numbers: list[int], events: list[dict[str, Any]]) -> list[str]:
    """Times no run can have: before its run.started (beyond a clock step) or a day after it."""
    start = events[0]["ts"]
    return [f"{path}:{number}: {event['type']}: ts: expected a Unix time from {start - CLOCK_SLACK:.3f} to "
            f"{start + RUN_SPAN:.3f} (within a day of the run's start, run.started ts {start:.3f}), got {event['ts']!r}"
            for number, event in zip(numbers, events, strict=False)
            if not start - CLOCK_SLACK <= event["ts"] <= start + RUN_SPAN]
