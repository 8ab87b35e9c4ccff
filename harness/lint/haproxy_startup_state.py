"""HAProxy 2.6 starts every server UP with health = rise ("up, but will fall down at the first
failure"; no ``init-state`` before 3.1), and checks server i of n first ``inter``·i/n after start.
A replica broken from the start is routed to blindly until its first check, and then marked
DOWN after one failed check, not ``fall``: the detection formula does not hold near start-up."""

from __future__ import annotations

from harness.lint.base import Hit, Trap
from harness.promise.haproxy import STARTUP_ALLOWANCE
from harness.scenario import Scenario


def check(scenario: Scenario) -> list[Hit]:
    hc = scenario.gateway.health_check
    if hc is None:
        return []
    spread = 1 + scenario.gateway.haproxy.spread_checks / 100
    soon = hc.interval * spread + STARTUP_ALLOWANCE
    for i, fault in enumerate(scenario.faults):
        if fault.at < soon:
            return [Hit(("faults", i, "at"),
                        f"{fault.label} starts {fault.at:g}s into the load, maybe before HAProxy's first check of "
                        f"the replica (within inter {hc.interval:g}s of its start, and the stack starts up to "
                        f"{STARTUP_ALLOWANCE:g}s before the load): HAProxy 2.6 starts servers UP with health = "
                        "rise, so it routes to the broken replica until that check and then marks it DOWN after "
                        f"one failed check, not fall {hc.unhealthy_threshold}; start the fault at "
                        f"{soon:g}s or later")]
    return []


TRAP = Trap("haproxy.startup-state", "haproxy", "warning",
            "a fault before HAProxy's first checks: servers start UP with health = rise (2.6 has no init-state), "
            "routed to blindly, then DOWN after one failed check", check)
