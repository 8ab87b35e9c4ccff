"""No client request hangs: the longest request in a window, failed ones included, stays under a bound."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.durations import Duration, format_duration
from harness.expectations.base import Expectation, Unjudgeable, Verdict, WindowSpec, describe_window, requests_in, seconds
from harness.timeline import Timeline


class MaxRequestTime(Expectation):
    """The longest request (success or failure, to its last byte or its error) in a window. Unlike
    ``latency``, failed requests count: a request the client gave up on after ``load.request_timeout``
    (error ``timeout``) measures that long, so a bound below the client's timeout means no request hung."""

    kind: Literal["max_request_time"]
    window: WindowSpec = Field(default="run", description="Which requests count (by start time).")
    max: Duration = Field(gt=0, description="Longest allowed time of any one request.")

    def describe(self) -> str:
        return f"no request {describe_window(self.window)} takes longer than {format_duration(self.max)}, failed ones included"

    def bound_text(self) -> str:
        return f"≤ {format_duration(self.max)}"

    def judge(self, timeline: Timeline) -> Verdict:
        start, end = self.window_bounds(self.window, timeline)
        requests = requests_in(timeline, self.window, start, end)
        if not requests:
            raise Unjudgeable(f"no request started between {start:.3f}s and {end:.3f}s")
        longest = max(requests, key=lambda r: r.latency)
        outcome = "succeeded" if longest.ok else f"failed ({longest.error})"
        return self.verdict(longest.latency <= self.max, seconds(longest.latency),
                            f"the longest of {len(requests)} requests took {seconds(longest.latency)} and {outcome}, "
                            f"started at {seconds(longest.t)}", bound_value=self.max, measured_value=longest.latency)
