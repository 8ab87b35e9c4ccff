"""Portkey has no notion of health (no health checks, no circuit breaker in the open-source gateway) and retries
nothing unless ``retry.attempts`` is set (its default is 0): a pool's ``loadbalance`` keeps sending its share of
requests to a dead replica for as long as the fault lasts, and, without a fallback pool, each of them fails
(measured on 1.15.2: one replica of two refused, every request it was picked for answered 500 "fetch failed ...
ECONNREFUSED", in 45 ms, for the whole fault; tests/integration/test_portkey.py)."""

from __future__ import annotations

from harness.lint.base import Hit, Trap
from harness.promise.portkey import request_cost
from harness.scenario import Scenario
from harness.targets import split_target


def check(scenario: Scenario) -> list[Hit]:
    pool = scenario.load_pool
    fallback = next((u.fallback for u in scenario.upstreams if u.name == pool), None)
    if fallback is not None:
        return []
    for i, fault in enumerate(scenario.faults):
        if split_target(fault.target)[0] != pool or request_cost(scenario, fault).effect.kind == "ok":
            continue
        return [Hit(("faults", i), f"{fault.label} breaks replicas of {pool!r}, which has no fallback pool: Portkey "
                    "never takes a replica out (no health checks, no circuit breaker), so its load balancer keeps "
                    "sending the replica its share of requests for the whole fault, and each fails (Portkey "
                    "retries nothing by default, and its retries stay on the same target); give the pool a "
                    "fallback (upstreams[].fallback)")]
    return []


TRAP = Trap("portkey.no-health", "portkey", "warning",
            "loadbalance without fallback: Portkey has no notion of health, so a dead replica's share of the "
            "requests fails for the whole fault", check)
