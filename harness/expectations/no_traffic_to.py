"""No client request is served by a replica during a window (it was routed around)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.expectations.base import (
    Expectation, Target, Unjudgeable, Verdict, WindowSpec, describe_window, requests_in, replicas_of, seconds,
)
from harness.timeline import Timeline


class NoTrafficTo(Expectation):
    """Counts requests the gateway sent to the target: served by it (its identity header) or
    routed to it (the gateway's upstream header), so failed attempts count too."""

    kind: Literal["no_traffic_to"]
    target: Target = Field(description="The replica(s) that must get no traffic.")
    window: WindowSpec = Field(default="after_detection", description="Which requests count (by start time).")

    def describe(self) -> str:
        return f"no request reaches {self.target} {describe_window(self.window)}"

    def bound_text(self) -> str:
        return "0 requests"

    def judge(self, timeline: Timeline) -> Verdict:
        start, end = self.window_bounds(self.window, timeline, self.target)
        if end <= start:
            raise Unjudgeable(f"the window is empty ({start:.3f}s to {end:.3f}s)")
        targets = set(replicas_of(self.target, timeline))
        hits = [r for r in requests_in(timeline, self.window, start, end) if r.reached(targets)]
        if not hits:
            return self.verdict(True, "0 requests", f"no request reached {self.target} between {start:.3f}s and {end:.3f}s",
                                bound_value=0, measured_value=0)
        last = hits[-1].t
        failed = sum(not r.ok for r in hits)
        return self.verdict(False, f"{len(hits)} requests",
                            f"the gateway sent {len(hits)} requests to {self.target} in the window ({failed} failed); "
                            f"the last one {seconds(last - start)} after the window began",
                            bound_value=0, measured_value=len(hits))
