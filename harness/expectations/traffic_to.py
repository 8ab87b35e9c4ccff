"""A replica keeps serving clients during a window: the gateway kept it in its pool (e.g. while DNS fails)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.expectations.base import (
    Expectation, Target, Unjudgeable, Verdict, WindowSpec, describe_window, replicas_of, requests_in,
)
from harness.timeline import Timeline


class TrafficTo(Expectation):
    """The share of requests in the window that the target served successfully (its identity header)
    is at least ``min_share``; the opposite of no_traffic_to."""

    kind: Literal["traffic_to"]
    target: Target = Field(description="The replica(s) that must keep serving.")
    window: WindowSpec = Field(default="fault", description="Which requests count (by start time).")
    min_share: float = Field(gt=0.0, le=1.0, description="Lowest share of the window's requests the target must "
                                                         "serve, 0..1 (e.g. 0.2 of 3 replicas' traffic).")

    def describe(self) -> str:
        return f"{self.target} serves at least {self.min_share:.0%} of requests {describe_window(self.window)}"

    def bound_text(self) -> str:
        return f"≥ {self.min_share:.2%}"

    def judge(self, timeline: Timeline) -> Verdict:
        start, end = self.window_bounds(self.window, timeline, self.target)
        requests = requests_in(timeline, self.window, start, end)
        if not requests:
            raise Unjudgeable(f"no request started between {start:.3f}s and {end:.3f}s")
        targets = set(replicas_of(self.target, timeline))
        served = sum(r.ok and r.replica in targets for r in requests)
        share = served / len(requests)
        return self.verdict(share >= self.min_share, f"{share:.2%}",
                            f"{self.target} served {served} of {len(requests)} requests between {start:.3f}s and "
                            f"{end:.3f}s", bound_value=self.min_share, measured_value=share)
