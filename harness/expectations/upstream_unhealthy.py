"""The gateway marks a faulty replica unhealthy within a bound of the fault's start."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from harness.durations import DurationOrPromised, format_duration
from harness.expectations.base import Expectation, Target, Unjudgeable, Verdict, replicas_of, seconds
from harness.timeline import Timeline

if TYPE_CHECKING:
    from harness.promise.window import Promise


class UpstreamUnhealthy(Expectation):
    """Detection time: fault start → the gateway reports every targeted replica unhealthy."""

    kind: Literal["upstream_unhealthy"]
    target: Target = Field(description="The replica(s) that must be marked unhealthy.")
    within: DurationOrPromised = Field(
        description="Longest allowed time from the fault's start, or 'promised': inside the window the "
                    "gateway's own configuration promises (docs/lint.md, harness/promise/).")

    def describe(self) -> str:
        bound = "the window its configuration promises" if self.within == "promised" else format_duration(self.within)
        return f"the gateway marks {self.target} unhealthy within {bound} of the fault starting"

    def bound_text(self) -> str:
        return "in the promised window" if self.within == "promised" else f"≤ {format_duration(self.within)}"

    def judge(self, timeline: Timeline) -> Verdict:
        return self.judge_promised(timeline, None)

    def evaluate_promised(self, timeline: Timeline, promise: Promise | None) -> Verdict:
        """Judge next to the window the gateway's configuration promises (never raises)."""
        try:
            return self.judge_promised(timeline, promise)
        except Unjudgeable as why:
            return self.verdict(False, "n/a", str(why))

    def judge_promised(self, timeline: Timeline, promise: Promise | None) -> Verdict:
        from harness.promise.verdicts import verdict_for

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
            return verdict_for(self, self.within, None, f"{', '.join(late)} still looked healthy to the gateway "
                               f"when {fault.label} ended, {seconds(fault.end - fault.start)} after it began", promise)
        detail = f"{self.target} was marked unhealthy {seconds(worst)} after {fault.label} began"
        if self.within != "promised" and worst > self.within:
            detail += f"; bound {format_duration(self.within)}"
        return verdict_for(self, self.within, worst, detail, promise)
