"""The gateway's own "nothing available" answer says when to come back.

When every deployment is cooling down (or every replica is out), the gateway answers the client itself:
LiteLLM's 429 "No deployments available", Envoy's 503 "no healthy upstream". A client (or an SDK that
retries) can only back off sensibly if that answer carries ``Retry-After``. An answer is the gateway's own
when it has a status in ``statuses`` and no replica's identity header (a fake stamps every answer it sends,
so a provider's 429 passed on is not the gateway's). The load journals the ``retry-after`` and
``retry-after-ms`` headers of every error answer.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fakes.retry_after import retry_after_seconds
from harness.expectations.base import (
    Expectation, Unjudgeable, Verdict, WindowSpec, describe_window, requests_in, seconds,
)
from harness.timeline import Request, Timeline

NAMED = 3


def asked_wait(request: Request, t0: float) -> float | None:
    """The seconds an answer asked its client to wait (``retry-after-ms``, else ``retry-after`` as seconds or as an
    HTTP date, from the moment the answer ended; a date already past is 0); None: nothing the client can read."""
    return retry_after_seconds(request.retry_after, request.retry_after_ms, t0 + request.t + request.latency)


class GatewayRetryAfter(Expectation):
    """Every answer of the gateway's own with a status in ``statuses`` carries a readable Retry-After."""

    kind: Literal["gateway_retry_after"]
    statuses: list[int] = Field(default=[429, 503], min_length=1,
                                description="The statuses of the gateway's own 'nothing available' answers.")
    window: WindowSpec = Field(default="run", description="Which requests count (by start time).")

    def describe(self) -> str:
        return f"the gateway's own {'/'.join(map(str, self.statuses))} answers carry Retry-After " \
               f"{describe_window(self.window)}"

    def bound_text(self) -> str:
        return "every one"

    def judge(self, timeline: Timeline) -> Verdict:
        start, end = self.window_bounds(self.window, timeline)
        requests = requests_in(timeline, self.window, start, end)
        own = [r for r in requests if r.status in self.statuses and r.replica is None]
        passed_on = sum(r.status in self.statuses and r.replica is not None for r in requests)
        if not own:
            raise Unjudgeable(f"the gateway answered no {'/'.join(map(str, self.statuses))} of its own between "
                              f"{start:.3f}s and {end:.3f}s ({passed_on} passed on from a replica)")
        without = [r for r in own if asked_wait(r, timeline.t0) is None]
        said = len(own) - len(without)
        share = said / len(own)
        detail = (f"{said} of the gateway's {len(own)} own {'/'.join(map(str, self.statuses))} answers between "
                  f"{start:.3f}s and {end:.3f}s carried a Retry-After ({passed_on} passed on from a replica not counted)")
        if said:
            waits = sorted(w for r in own if (w := asked_wait(r, timeline.t0)) is not None)
            detail += f"; asking {waits[0]:g}s" + (f" to {waits[-1]:g}s" if waits[-1] != waits[0] else "")
        if without:
            named = ", ".join(f"{r.status} at {seconds(r.t)}" + (f" ({r.body[:60]!r})" if r.body else "")
                              for r in without[:NAMED])
            detail += f"; without one: {named}" + (f" and {len(without) - NAMED} more" if len(without) > NAMED else "")
        return self.verdict(not without, f"{said} of {len(own)}", detail, bound_value=1.0, measured_value=share)
