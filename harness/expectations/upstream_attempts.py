"""Retry amplification: how many attempts the gateway made upstream for one client request.

Counted at the upstreams, by the request id every load request carries (``x-chaosgate-request``): the tries
each replica's own process saw arrive (the fakes' attempt logs), and where the gateway logs each try (Envoy's
upstream log, nginx's ``$upstream_addr``) the tries it sent, those a network fault stopped on the way
included. A request's count is the larger of the two. A gateway that retries every error against every
deployment (or the same cooled-down one) multiplies the load on a struggling provider by that factor.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

from pydantic import Field

from harness.expectations.base import Expectation, Unjudgeable, Verdict, WindowSpec, describe_window, requests_in
from harness.timeline import Timeline

NAMED = 3  # requests named in the detail


class UpstreamAttempts(Expectation):
    """Every client request that started in the window reached the upstreams at most ``max_per_request`` times."""

    kind: Literal["upstream_attempts"]
    max_per_request: int = Field(ge=1, description="Most attempts the gateway may make upstream for one request, "
                                                   "its first try included (1: no retries).")
    window: WindowSpec = Field(default="run", description="Which client requests count (by start time).")

    def describe(self) -> str:
        return f"the gateway makes at most {self.max_per_request} upstream attempt(s) per client request " \
               f"{describe_window(self.window)}"

    def bound_text(self) -> str:
        return f"≤ {self.max_per_request} per request"

    def judge(self, timeline: Timeline) -> Verdict:
        if not timeline.attempt_logs.get("replica"):
            raise Unjudgeable("the run kept no attempt logs of the upstreams (a journal from before they existed, "
                              "or your own servers: upstreams[].address), so attempts cannot be counted")
        start, end = self.window_bounds(self.window, timeline)
        requests = {r.id: r for r in requests_in(timeline, self.window, start, end) if r.id is not None}
        if not requests:
            raise Unjudgeable(f"no client request with a load id started between {start:.3f}s and {end:.3f}s")
        seen = Counter(a.request_id for a in timeline.attempts
                       if a.source == "replica" and a.client and a.request_id in requests)
        sent = Counter(a.request_id for a in timeline.attempts if a.source == "gateway" and a.request_id in requests)
        counts = {rid: max(seen[rid], sent[rid]) for rid in requests}
        worst = max(counts.values())
        over = sorted((rid for rid, n in counts.items() if n > self.max_per_request), key=lambda rid: -counts[rid])
        spread = Counter(counts.values())
        detail = (f"{len(requests)} client requests between {start:.3f}s and {end:.3f}s; attempts per request: "
                  + ", ".join(f"{n}: {spread[n]}" for n in sorted(spread))
                  + (" (the gateway's log of each try included)" if timeline.attempt_logs.get("gateway") else
                     " (tries the replicas saw arrive; the gateway logs none of its own)"))
        if over:
            named = ", ".join(f"{rid} ({counts[rid]} attempts, {requests[rid].status or requests[rid].error})"
                              for rid in over[:NAMED])
            detail += f"; over the bound: {len(over)}, e.g. {named}"
        return self.verdict(worst <= self.max_per_request, f"{worst} at most", detail,
                            bound_value=float(self.max_per_request), measured_value=float(worst))
