"""The run's facts the promise formulas use: when a pool first carried traffic, how many requests
per second reach it, how long before the load the gateway was already up, the gateway's own words for
each replica (HAProxy: when its first check passed) and its check rounds as it stamped them (LiteLLM)
(measured in a run from its journal, or nominal from the scenario when there is no run: validate and
lint)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from harness.scenario import Scenario
from harness.timeline import FlagsChange, Timeline

# Covers: a request's time in a local gateway, added to the fake's service time for the nominal rate.
# Measured: nginx/HAProxy/Envoy add 2-5 ms per request on loopback (latency in the journals minus ttft).
GATEWAY_OVERHEAD_S = 0.005
MIN_BASELINE_REQUESTS = 20   # fewer requests before the first fault: use the nominal rate


@dataclass(frozen=True)
class LoadFacts:
    """``first_traffic``: seconds after the load started when the pool carried its first request
    (None: it never does: the load goes to another pool). ``rate``: requests per second the load
    sends to the pool while nothing is broken; ``users``: concurrent clients. ``gateway_up``: seconds
    before the load started when the gateway was already running (in a run: the journal's first
    health sample of the gateway's view, taken after it was ready; nominal: 0, the least it can be),
    so a fault at ``at`` comes at least ``at + gateway_up`` after the gateway started.
    ``flags``: each replica's flags in the gateway's own words as they changed (``hosts`` events; empty
    without a run or in an older journal). ``rounds``: the gateway's check rounds that ended, as
    (checks started, verdicts written) in seconds since the load started (``gateway.health_rounds``;
    None: not known, the formulas use their nominal round). ``fault_start``: when the fault the facts are
    for began in this run (its ``fault.started``, seconds since the load started; None without a run)."""

    first_traffic: float | None
    rate: float
    users: int
    source: str
    gateway_up: float = 0.0
    flags: Mapping[str, tuple[FlagsChange, ...]] = field(default_factory=dict)
    rounds: tuple[tuple[float, float], ...] | None = None
    fault_start: float | None = None

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


def gateway_up(timeline: Timeline) -> float:
    """How long before the load's start the gateway was already up: the observer samples its view
    only once the stack is ready, and journals that first sample before the load starts."""
    first = min((change.t for changes in timeline.health.values() for change in changes), default=0.0)
    return max(0.0, -first)


def measured_facts(scenario: Scenario, pool: str, timeline: Timeline) -> LoadFacts:
    """From a run: the first request, the request rate before the first fault, the gateway's lead, its
    words for each replica and its check rounds."""
    rounds = None if timeline.health_rounds is None else \
        tuple((r.started, r.written) for r in timeline.health_rounds if r.written is not None)
    return replace(_measured_load(scenario, pool, timeline), gateway_up=gateway_up(timeline),
                   flags={replica: tuple(changes) for replica, changes in timeline.flags.items()}, rounds=rounds)


def _measured_load(scenario: Scenario, pool: str, timeline: Timeline) -> LoadFacts:
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
