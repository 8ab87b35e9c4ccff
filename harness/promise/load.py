"""What the scenario's load means for passive health: when a pool first carried traffic and
how many requests per second reach it (measured in a run, or nominal from the scenario)."""

from __future__ import annotations

from dataclasses import dataclass

from harness.scenario import Scenario
from harness.timeline import Timeline

GATEWAY_OVERHEAD_S = 0.005   # per request through a local gateway, added to the fake's service time
MIN_BASELINE_REQUESTS = 20   # fewer requests before the first fault: use the nominal rate


@dataclass(frozen=True)
class LoadFacts:
    """``first_traffic``: seconds after the load started when the pool carried its first request
    (None: it never does: the load goes to another pool). ``rate``: requests per second the load
    sends to the pool while nothing is broken; ``users``: concurrent clients."""

    first_traffic: float | None
    rate: float
    users: int
    source: str

    def text(self) -> str:
        return f"{self.rate:.0f} requests/s from {self.users} users ({self.source})"


def nominal_facts(scenario: Scenario, pool: str) -> LoadFacts:
    """From the scenario alone: each user sends one request after another; a request takes the
    fake's time to first token plus ``max_tokens`` at its token rate, plus the user's wait."""
    if pool != scenario.load_pool:
        return LoadFacts(None, 0.0, 0, f"the load goes to {scenario.load_pool!r}, not {pool!r}")
    upstream = next(u for u in scenario.upstreams if u.name == pool)
    service = upstream.ttft + scenario.load.max_tokens / upstream.tokens_per_s + GATEWAY_OVERHEAD_S
    rate = scenario.load.users / (service + scenario.load.wait)
    return LoadFacts(0.0, rate, scenario.load.users, "nominal, from the load and the replicas' speed")


def measured_facts(scenario: Scenario, pool: str, timeline: Timeline) -> LoadFacts:
    """From a run: the first request, and the request rate before the first fault."""
    nominal = nominal_facts(scenario, pool)
    if nominal.first_traffic is None or not timeline.requests:
        return nominal
    first = timeline.requests[0].t
    quiet_until = min((f.start for f in timeline.faults), default=timeline.end)
    before = [r for r in timeline.requests if r.t < quiet_until]
    if len(before) >= MIN_BASELINE_REQUESTS and quiet_until - first > 0:
        rate = len(before) / (quiet_until - first)
        return LoadFacts(max(first, 0.0), rate, nominal.users, "measured before the first fault")
    span = timeline.requests[-1].t - first
    if len(timeline.requests) >= MIN_BASELINE_REQUESTS and span > 0:  # a short baseline: the whole run's rate
        return LoadFacts(max(first, 0.0), len(timeline.requests) / span, nominal.users, "measured over the run")
    return LoadFacts(max(first, 0.0), nominal.rate, nominal.users, nominal.source)
