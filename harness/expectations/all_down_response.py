"""What clients get when no replica is left: a given status and body, soon after the fault."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.durations import Duration, format_duration
from harness.expectations.base import Expectation, Unjudgeable, Verdict, seconds
from harness.timeline import Request, Timeline


class AllDownResponse(Expectation):
    """The first request that gets ``status`` with ``body_contains`` must start within
    ``within`` of the fault's start; from then until the fault ends, at least ``min_share``
    of requests must get that answer. Without ``fault:``, the scenario's first fault counts."""

    kind: Literal["all_down_response"]
    status: int = Field(default=503, ge=100, le=599, description="The HTTP status clients must get.")
    body_contains: str = Field(default="no healthy upstream", description="Text the response body must contain.")
    within: Duration = Field(description="Longest allowed time from the fault's start to the start of the first request answered so.")
    min_share: float = Field(default=0.95, ge=0, le=1,
                             description="Share of responses from then to the fault's end that must match.")

    def describe(self) -> str:
        return (f"within {format_duration(self.within)} of the fault starting, clients get "
                f"{self.status} '{self.body_contains}'")

    def bound_text(self) -> str:
        return f"≤ {format_duration(self.within)}"

    def _matches(self, request: Request) -> bool:
        return request.status == self.status and self.body_contains in (request.body or "")

    def judge(self, timeline: Timeline) -> Verdict:
        fault = self.related_fault(timeline)
        during = timeline.requests_between(fault.start, fault.end)
        if not during:
            raise Unjudgeable(f"no request started during {fault.label}")
        first = next((r for r in during if self._matches(r)), None)
        if first is None:
            seen = sorted({f"{r.status} {(r.body or r.error or '')[:60]!r}" for r in during})[:3]
            return self.verdict(False, "never", f"no client got {self.status} '{self.body_contains}' during "
                                f"{fault.label}; they got: {'; '.join(seen)}", bound_value=self.within)
        delay = first.t - fault.start
        after = [r for r in during if r.t >= first.t]
        share = sum(self._matches(r) for r in after) / len(after)
        passed = delay <= self.within and share >= self.min_share
        detail = (f"first {self.status} '{self.body_contains}' {seconds(delay)} after {fault.label} began; "
                  f"{share:.1%} of the {len(after)} requests after it matched (need {self.min_share:.0%})")
        return self.verdict(passed, seconds(delay), detail, bound_value=self.within, measured_value=delay)
