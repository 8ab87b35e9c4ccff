"""The share of failed client requests in a window stays at or below a bound."""

from __future__ import annotations

from collections import Counter
from typing import Literal

from pydantic import Field

from harness.expectations.base import Expectation, Unjudgeable, Verdict, WindowSpec, describe_window, requests_in
from harness.timeline import Timeline


class ErrorRate(Expectation):
    """Failed requests (any error kind) divided by all requests that started in the window."""

    kind: Literal["error_rate"]
    window: WindowSpec = Field(description="Which requests count (by start time).")
    max: float = Field(ge=0.0, le=1.0, description="Highest allowed share of failed requests, 0..1.")

    def describe(self) -> str:
        return f"at most {self.max:.2%} of requests fail {describe_window(self.window)}"

    def bound_text(self) -> str:
        return f"≤ {self.max:.2%}"

    def judge(self, timeline: Timeline) -> Verdict:
        start, end = self.window_bounds(self.window, timeline)
        requests = requests_in(timeline, self.window, start, end)
        if not requests:
            raise Unjudgeable(f"no request started between {start:.3f}s and {end:.3f}s")
        failed = [r for r in requests if not r.ok]
        rate = len(failed) / len(requests)
        kinds = ", ".join(f"{n} {kind}" for kind, n in Counter(r.error for r in failed).most_common())
        detail = f"{len(failed)} of {len(requests)} requests failed between {start:.3f}s and {end:.3f}s"
        if failed:
            detail += f" ({kinds})"
        return self.verdict(rate <= self.max, f"{rate:.2%}", detail, bound_value=self.max, measured_value=rate)
