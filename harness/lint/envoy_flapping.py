"""With active checks and outlier detection together, Envoy's default
``successful_active_health_check_uneject_host: true`` (what chaosgate renders) lets the next
passing check un-eject a replica outlier detection just ejected: a replica whose requests fail
while its health endpoint passes flaps, ejected and readmitted about every interval, and clients
keep getting its errors (measured: 23 ejections in 25 s)."""

from __future__ import annotations

from harness.lint.base import Hit, Trap
from harness.promise.effects import check_effect, request_effect
from harness.promise.envoy import passive_detection
from harness.promise.window import Window
from harness.scenario import Scenario

PATH = ("gateway", "outlier_detection")


def check(scenario: Scenario) -> list[Hit]:
    hc, od = scenario.gateway.health_check, scenario.gateway.outlier_detection
    if hc is None or od is None:
        return []
    retries = scenario.gateway.retries
    limit = retries.per_try_timeout if retries is not None and retries.per_try_timeout else \
        scenario.gateway.request_timeout
    for fault in scenario.faults:
        on_checks = check_effect(fault, hc.path, hc.timeout, hc.expected_statuses)
        on_requests = request_effect(fault, limit)
        ejects = isinstance(passive_detection(scenario, fault), Window)
        if on_checks.kind == "passes" and on_requests.kind in ("local", "status") and ejects:
            return [Hit(PATH, f"with the active check on {hc.path}: {fault.label} makes requests fail "
                        f"({on_requests.why}) while the check passes ({on_checks.why}); outlier detection ejects "
                        "the replica, the next passing check un-ejects it (Envoy's "
                        "successful_active_health_check_uneject_host is true), so it flaps about every "
                        f"{hc.interval:g}s and clients keep getting its errors; check what clients use "
                        "(path: /health/deep) or rely on one mechanism")]
    return []


TRAP = Trap("envoy.uneject-flapping", "envoy", "warning",
            "active checks that un-eject a host outlier detection just ejected (a fault the health endpoint "
            "does not see): the host flaps", check)
