"""A try that Portkey cuts at its ``request_timeout`` becomes its own 408 answer, which ``retry`` never retries
(its retry loop retries thrown connection errors and the statuses of on_status_codes; the adapter lists none of
408): with a replica that hangs, retries do nothing (measured on 1.15.2: a 1 s request_timeout on a replica that
never answers, 408 "Request exceeded the timeout sent in the request: 1000ms" after 1.02 s, with 2 retries set)."""

from __future__ import annotations

from harness.gateways.portkey import try_limit
from harness.lint.base import Hit, Trap
from harness.promise.effects import request_effect
from harness.scenario import Scenario


def check(scenario: Scenario) -> list[Hit]:
    g = scenario.gateway
    if g.retries is None or g.retries.num_retries == 0:
        return []
    limit = try_limit(g)
    for fault in scenario.faults:
        effect = request_effect(fault, limit)
        if effect.kind == "local" and limit > 0 and effect.takes >= limit:
            return [Hit(("gateway", "retries"), f"{fault.label}: {effect.why}, so each try ends in Portkey's own 408, "
                        "which its retry never retries: the retries do nothing for this fault (a fallback pool "
                        "does: Portkey falls back on any answer that is not 2xx)")]
    return []


TRAP = Trap("portkey.timeout-not-retried", "portkey", "warning",
            "a try cut at request_timeout is Portkey's own 408, which its retry never retries", check)
