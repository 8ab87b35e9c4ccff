"""Portkey's ``retry`` retries the same target, never another replica of the pool, and waits 1 s, 2 s, 4 s, ...
before each retry (async-retry's default backoff; measured on 1.15.2: 2 retries of a refused target took
3.02 s and still failed). With a dead replica, retries only make each request that lands on it slower; only the
fallback strategy moves a request to other targets."""

from __future__ import annotations

from harness.gateways.portkey import retry_waits
from harness.lint.base import Hit, Trap
from harness.promise.portkey import request_cost
from harness.scenario import Scenario


def check(scenario: Scenario) -> list[Hit]:
    retries = scenario.gateway.retries
    if retries is None or retries.num_retries == 0:
        return []
    for fault in scenario.faults:
        cost = request_cost(scenario, fault)
        if cost.retried and cost.effect.kind in ("local", "status"):
            return [Hit(("gateway", "retries", "num_retries"), f"{fault.label}: Portkey retries the same target "
                        f"{'once' if retries.num_retries == 1 else f'{retries.num_retries} times'}, waiting {retry_waits(retries.num_retries):g}s in all between "
                        f"tries ({cost.how}): a request on the faulty replica fails anyway, "
                        f"{cost.seconds:g}s later; retries never reach another replica (only a fallback pool does)")]
    return []


TRAP = Trap("portkey.retry-same-target", "portkey", "warning",
            "Portkey retries the same target with 1s, 2s, 4s... of backoff, never another replica", check)
