"""The fallback really served, and soon enough: from the fault's start to the first answer a fallback pool gave.

A fallback that is configured but never triggered is the most reported failure of AI gateways: the
verdict passes only when a successful client request served by the target (its replicas' identity
header) ended at most ``within`` after the fault began. It fails the other way too: a target that
served clients before the fault began is not a fallback the fault triggered but a pool the gateway
sends traffic to anyway (a load balancer), so its answers during the fault prove nothing.

``within: promised`` judges the time against the window the gateway's configuration promises for a fallback
pool (``upstreams[].fallback``, harness/promise/fallback.py): inside it passes; earlier or later fails.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from harness.durations import DurationOrPromised, format_duration
from harness.expectations.base import PromisedExpectation, Target, Unjudgeable, Verdict, replicas_of, seconds
from harness.timeline import Timeline

if TYPE_CHECKING:
    from harness.promise.window import Promise


class FallbackWithin(PromisedExpectation):
    """The first successful answer served by ``target`` ends within ``within`` of the fault's start, and none
    came from it before the fault."""

    kind: Literal["fallback_within"]
    target: Target = Field(description="The fallback: a pool (fallback[*]) or one replica.")
    within: DurationOrPromised = Field(
        description="Longest time from the fault's start to the fallback's first answer; 'promised': inside the "
                    "window the configuration promises for the pool's fallback (upstreams[].fallback).")

    def describe(self) -> str:
        bound = "the window its configuration promises" if self.within == "promised" else format_duration(self.within)
        return f"{self.target} answers a client within {bound} of the fault starting, and not before it"

    def bound_text(self) -> str:
        return "in the promised window" if self.within == "promised" else f"≤ {format_duration(self.within)}"

    def judge_promised(self, timeline: Timeline, promise: Promise | None) -> Verdict:
        from harness.promise.verdicts import verdict_for

        fault = self.related_fault(timeline)
        fallback = set(replicas_of(self.target, timeline))
        served = sorted((r for r in timeline.requests if r.ok and r.replica in fallback), key=lambda r: r.t + r.latency)
        before = [r for r in served if r.t + r.latency < fault.start]
        if before:
            first = before[0]
            return self.verdict(False, "served before the fault",
                                f"{first.replica} answered a request that ended at {seconds(first.t + first.latency)}, "
                                f"before {fault.label} began at {seconds(fault.start)} ({len(before)} such answers): "
                                f"{self.target} takes traffic without the fault, so it is no proof of a fallback",
                                bound_value=self.within if isinstance(self.within, float) else None)
        if not served:
            raise Unjudgeable(f"{self.target} answered no client request after {fault.label} began at "
                              f"{seconds(fault.start)}: the fallback was never used")
        first = served[0]
        after = first.t + first.latency - fault.start
        detail = (f"{fault.label} began at {seconds(fault.start)}; the first answer from {self.target} "
                  f"({first.replica}, a request started at {seconds(first.t)}) ended at "
                  f"{seconds(first.t + first.latency)}, {seconds(after)} later")
        return verdict_for(self, self.within, after, detail, promise, fault.end - fault.start, ("the fault", "it began"))
