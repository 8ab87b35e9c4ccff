"""The tries that reached a ``no_traffic_to`` target in its window, as the report shows them beside the
verdict: how many, and the first few with their time and request id.

The counting is the expectation's own (harness/expectations/no_traffic_to.attempts_at): every try the
gateway logged as sent to the target, or else every try its process saw arrive (retries included), or,
in a journal without attempt logs, the client requests served by or routed to it (the last try only).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.expectations import Expectation, NoTrafficTo
from harness.expectations.base import Unjudgeable, replicas_of, requests_in
from harness.expectations.no_traffic_to import attempts_at
from harness.timeline import Timeline

SHOWN = 5  # tries listed; the rest are counted


@dataclass(frozen=True)
class Try:
    """One try that reached the target, as a line of the report."""

    t: float                 # seconds since the load started
    replica: str
    request_id: str | None
    source: str              # "gateway log", "replica" or "client" (a journal without attempt logs)
    outcome: str             # the try's status and flags (gateway log), or the client's status; "" unknown

    def text(self, window_start: float) -> str:
        what = f"request {self.request_id}" if self.request_id else "a request without a load id"
        outcome = f", {self.outcome}" if self.outcome else ""
        return (f"{self.t:.3f}s (+{self.t - window_start:.3f}s): {what} at {self.replica}, "
                f"seen by the {self.source}{outcome}")


@dataclass(frozen=True)
class TriesShown:
    """What reached the target of one ``no_traffic_to`` in [start, end)."""

    target: str
    start: float
    end: float
    count: int
    unit: str               # "tries", or "requests (last tries only)" for a journal without attempt logs
    first: list[Try]

    @property
    def more(self) -> int:
        return max(0, self.count - len(self.first))

    def summary(self) -> str:
        if self.count == 0:
            return f"No try reached {self.target} between {self.start:.3f}s and {self.end:.3f}s."
        return (f"{self.count} {self.unit} reached {self.target} between {self.start:.3f}s and {self.end:.3f}s"
                + (f"; the first {len(self.first)}:" if self.more else ":"))


def tries_for(expectation: Expectation, timeline: Timeline, shown: int = SHOWN) -> TriesShown | None:
    """The tries of a ``no_traffic_to`` expectation's window (None for another kind, or a window that
    cannot be placed: its verdict says why)."""
    if not isinstance(expectation, NoTrafficTo):
        return None
    target, window = expectation.target, expectation.window
    try:
        start, end = expectation.window_bounds(window, timeline, target)
    except Unjudgeable:
        return None
    if end <= start:
        return None
    found = attempts_at(timeline, set(replicas_of(target, timeline)), start, end,
                        requests_in(timeline, window, start, end))
    if found.sent or found.seen:
        source = "gateway log" if found.sent else "replica"
        tries = [Try(a.t, a.replica or "?", a.request_id, source,
                     " ".join(str(x) for x in (a.status, a.flags) if x)) for a in (found.sent or found.seen)]
    else:
        tries = [Try(r.t, r.replica or r.routed_to or "?", r.id, "client",
                     str(r.status) if r.status is not None else (r.error or "")) for r in found.requests]
    tries.sort(key=lambda t: t.t)
    unit = "tries" if timeline.attempt_logs else "requests (last tries only)"
    return TriesShown(target, start, end, found.count, unit, tries[:shown])
