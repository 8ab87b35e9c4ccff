"""A latency percentile of successful requests in a window stays at or below a bound."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.durations import Duration, format_duration
from harness.expectations.base import Expectation, Unjudgeable, Verdict, WindowSpec, describe_window, requests_in, seconds
from harness.timeline import Timeline, percentile


class Latency(Expectation):
    """Percentile of full response time (to the last byte) over successful requests."""

    kind: Literal["latency"]
    window: WindowSpec = Field(description="Which requests count (by start time).")
    percentile: float = Field(default=99.0, gt=0, le=100, description="Which percentile, e.g. 50, 95, 99.")
    max: Duration = Field(description="Highest allowed value of that percentile.")

    def describe(self) -> str:
        return f"p{self.percentile:g} latency of successful requests {describe_window(self.window)} is at most {format_duration(self.max)}"

    def bound_text(self) -> str:
        return f"≤ {format_duration(self.max)}"

    def judge(self, timeline: Timeline) -> Verdict:
        start, end = self.window_bounds(self.window, timeline)
        latencies = [r.latency for r in requests_in(timeline, self.window, start, end) if r.ok]
        if not latencies:
            raise Unjudgeable(f"no successful request started between {start:.3f}s and {end:.3f}s")
        value = percentile(latencies, self.percentile)
        return self.verdict(value <= self.max, seconds(value),
                            f"p{self.percentile:g} of {len(latencies)} successful requests was {seconds(value)}",
                            bound_value=self.max, measured_value=value)
