"""The gateway marks a faulty replica unhealthy within a bound of the fault's start."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from harness.durations import DurationPromisedOrNever, format_duration
from harness.expectations.base import PromisedExpectation, Target, Verdict, replicas_of, seconds
from harness.timeline import Timeline

if TYPE_CHECKING:
    from harness.promise.window import Promise


class UpstreamUnhealthy(PromisedExpectation):
    """Detection time: fault start → the gateway reports every targeted replica unhealthy."""

    kind: Literal["upstream_unhealthy"]
    target: Target = Field(description="The replica(s) that must be marked unhealthy.")
    within: DurationPromisedOrNever = Field(
        description="Longest allowed time from the fault's start; 'promised': inside the window the gateway's own "
                    "configuration promises, which fails when it promises never (docs/lint.md, harness/promise/); "
                    "'never': the gateway must not mark the target unhealthy while the fault lasts.")

    def describe(self) -> str:
        if self.within == "never":
            return f"the gateway never marks {self.target} unhealthy while the fault lasts"
        bound = "the window its configuration promises" if self.within == "promised" else format_duration(self.within)
        return f"the gateway marks {self.target} unhealthy within {bound} of the fault starting"

    def bound_text(self) -> str:
        if self.within == "never":
            return "never"
        return "in the promised window" if self.within == "promised" else f"≤ {format_duration(self.within)}"

    def judge_promised(self, timeline: Timeline, promise: Promise | None) -> Verdict:
        from harness.promise.verdicts import verdict_for

        fault = self.related_fault(timeline, self.target)
        duration = fault.end - fault.start
        late: list[str] = []
        worst = 0.0
        first: tuple[float, str] | None = None
        for replica in replicas_of(self.target, timeline):
            seen = timeline.first_unhealthy(replica, fault.start)
            if seen is None or seen > fault.end:
                late.append(replica)
                continue
            worst = max(worst, seen - fault.start)
            first = min(first or (seen - fault.start, replica), (seen - fault.start, replica))
        ended = ("the fault", "it began")
        if self.within == "never":
            if first is None:
                return verdict_for(self, self.within, None, f"{self.target} looked healthy to the gateway until "
                                   f"{fault.label} ended, {seconds(duration)} after it began", promise, duration, ended)
            return verdict_for(self, self.within, first[0], f"{first[1]} was marked unhealthy {seconds(first[0])} "
                               f"after {fault.label} began; expected never", promise, duration, ended)
        if late:
            return verdict_for(self, self.within, None, f"{', '.join(late)} still looked healthy to the gateway "
                               f"when {fault.label} ended, {seconds(duration)} after it began", promise, duration, ended)
        detail = f"{self.target} was marked unhealthy {seconds(worst)} after {fault.label} began"
        if self.within != "promised" and worst > self.within:
            detail += f"; bound {format_duration(self.within)}"
        return verdict_for(self, self.within, worst, detail, promise, duration, ended)
