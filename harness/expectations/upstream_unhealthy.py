"""The gateway marks a faulty replica unhealthy within a bound of the fault's start."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.durations import Duration, format_duration
from harness.expectations.base import Expectation, Target, Verdict, replicas_of, seconds
from harness.timeline import Timeline


class UpstreamUnhealthy(Expectation):
    """Detection time: fault start → the gateway reports every targeted replica unhealthy."""

    kind: Literal["upstream_unhealthy"]
    target: Target = Field(description="The replica(s) that must be marked unhealthy.")
    within: Duration = Field(description="Longest allowed time from the fault's start.")

    def describe(self) -> str:
        return f"the gateway marks {self.target} unhealthy within {format_duration(self.within)} of the fault starting"

    def bound_text(self) -> str:
        return f"≤ {format_duration(self.within)}"

    def judge(self, timeline: Timeline) -> Verdict:
        fault = self.related_fault(timeline, self.target)
        late: list[str] = []
        worst = 0.0
        for replica in replicas_of(self.target, timeline):
            seen = timeline.first_unhealthy(replica, fault.start)
            if seen is None or seen > fault.end:
                late.append(replica)
                continue
            worst = max(worst, seen - fault.start)
        if late:
            return self.verdict(False, "never", f"{', '.join(late)} still looked healthy to the gateway when "
                                f"{fault.label} ended, {seconds(fault.end - fault.start)} after it began",
                                bound_value=self.within)
        passed = worst <= self.within
        detail = (f"{self.target} was marked unhealthy {seconds(worst)} after {fault.label} began"
                  + ("" if passed else f"; bound {format_duration(self.within)}"))
        return self.verdict(passed, seconds(worst), detail, bound_value=self.within, measured_value=worst)
