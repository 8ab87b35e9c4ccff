"""Below ``healthy_panic_threshold`` percent of healthy replicas (50 by default) Envoy ignores
health and balances over every replica, the broken ones too: clients get 'upstream connect
error ...' or timeouts instead of '503 no healthy upstream', and the broken replicas keep traffic."""

from __future__ import annotations

from harness.lint.base import Hit, Trap
from harness.lint.faults_at_once import worst_moments
from harness.scenario import Scenario

PATH = ("gateway", "panic_threshold")


def check(scenario: Scenario) -> list[Hit]:
    threshold = scenario.gateway.panic_threshold
    if threshold <= 0:
        return []
    for broken in worst_moments(scenario):
        if broken.healthy_percent < threshold:
            return [Hit(PATH, f"is {threshold:g}%: while {broken.labels} leave{'s' if len(broken.faults) == 1 else ''} "
                        f"{broken.size - len(broken.replicas)} of {broken.size} replicas of {broken.pool!r} healthy "
                        f"({broken.healthy_percent:.0f}%), Envoy is in panic mode: it ignores health and routes to "
                        "the broken replicas too, so clients see 'upstream connect error ...' or timeouts rather "
                        "than '503 no healthy upstream'; set panic_threshold: 0 to get the 503")]
    if any(e.kind == "all_down_response" for e in scenario.expect):
        return [Hit(PATH, f"is {threshold:g}%: when fewer replicas than that are healthy Envoy routes to all of "
                    "them anyway, so clients see 'upstream connect error ...' rather than 'no healthy upstream'; "
                    "set panic_threshold: 0 to get the 503")]
    return []


TRAP = Trap("envoy.panic-threshold", "envoy", "warning",
            "panic_threshold above 0 while faults break half or more of a pool: Envoy routes to the broken "
            "replicas, no '503 no healthy upstream'", check)
