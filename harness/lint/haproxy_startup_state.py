"""HAProxy 2.6 starts every server UP with health = rise ("up, but will fall down at the first
failure"; no ``init-state`` before 3.1), and checks server i of n first ``inter``·i/n after start.
A replica broken from the start is routed to blindly until its first check, and then marked
DOWN after one failed check, not ``fall``: the detection formula does not hold near start-up."""

from __future__ import annotations

from harness.lint.base import Hit, Trap
from harness.promise.haproxy import first_checks_done_by
from harness.scenario import Scenario


def check(scenario: Scenario) -> list[Hit]:
    hc = scenario.gateway.health_check
    if hc is None:
        return []
    soon = first_checks_done_by(scenario)  # the stack is up before the load starts: this is the least
    for i, fault in enumerate(scenario.faults):
        if fault.at < soon:
            return [Hit(("faults", i, "at"),
                        f"{fault.label} starts {fault.at:g}s into the load, maybe before HAProxy's first check of "
                        f"the replica (started within inter {hc.interval:g}s of HAProxy's start, ended by "
                        f"{soon:g}s; the stack may be ready just as the load starts): HAProxy 2.6 starts servers "
                        "UP with health = "
                        "rise, so it routes to the broken replica until that check and then marks it DOWN after "
                        f"one failed check, not fall {hc.unhealthy_threshold}; start the fault at "
                        f"{soon:g}s or later")]
    return []


TRAP = Trap("haproxy.startup-state", "haproxy", "warning",
            "a fault before HAProxy's first checks: servers start UP with health = rise (2.6 has no init-state), "
            "routed to blindly, then DOWN after one failed check", check)
