"""Where a run's time goes: the moments of its phases, so that a regression names its phase.

A ``PhaseClock`` marks named moments in seconds since it was made (monotonic time). The local
runtime marks each component of the stack as it becomes ready (journalled in ``stack.ready`` as
``phases``); the run adds how long it waited for the load processes once the stack was ready (they are spawned
before the stack comes up; ``load.started`` ``startup_seconds``), how long the load took to drain after its declared end (``load.finished``
``drain_seconds``) and the teardown (``run.finished`` ``teardown_seconds``). The report's facts and
bench/startup.py show them.
"""

from __future__ import annotations

import time


class PhaseClock:
    """Named moments since the clock was made, in seconds (rounded to 0.1 ms), in the order marked."""

    def __init__(self) -> None:
        self._start = time.monotonic()
        self.marks: dict[str, float] = {}

    def mark(self, name: str) -> float:
        """Record ``name`` now; the seconds since the start."""
        self.marks[name] = round(time.monotonic() - self._start, 4)
        return self.marks[name]

    def since(self) -> float:
        return time.monotonic() - self._start


# The stack's moments on the local runtime, in the order they happen (docs/reports.md).
STACK_PHASES = {
    "toxiproxy_ready": "Toxiproxy answers its API",
    "replicas_ready": "every replica answers its health and control endpoints",
    "proxies_created": "a Toxiproxy proxy in front of each replica",
    "gateway_started": "the gateway's config written and its process started",
    "gateway_ready": "the gateway says it is ready",
    "all_healthy": "the gateway reports every replica healthy",
    "gateway_answered": "a gateway chaosgate did not start answers through its upstreams (attach)",
}
