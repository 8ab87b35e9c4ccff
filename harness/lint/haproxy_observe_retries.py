"""HAProxy 2.6 reports only a request's last try to ``observe`` (a failed connection excepted): a try
that ``retry-on`` retries never reaches ``health_adjust()`` (HAProxy issue #2679, fixed in 3.1). With
retries on another server (``option redispatch 1``), a replica broken alone is never marked DOWN by
``observe`` for the errors the retries cover (measured on 2.6.12: chat[0] answering 500, 88-91 requests
retried on another server per run, ``observe`` never acted; without retries it was DOWN after 0.54 s)."""

from __future__ import annotations

from harness.lint.base import Hit, Trap
from harness.promise.effects import request_effect
from harness.promise.haproxy import OBSERVED_STATUSES, retried_away, try_failure
from harness.scenario import Scenario
from harness.targets import resolve, split_target

PATH = ("gateway", "retries", "retry_on")


def check(scenario: Scenario) -> list[Hit]:
    g = scenario.gateway
    od, retries = g.outlier_detection, g.retries
    if od is None or not od.consecutive_5xx or g.health_check is None or retries is None or g.haproxy.observe != "layer7":
        return []
    limit = retries.per_try_timeout or g.request_timeout
    for fault in scenario.faults:
        effect = request_effect(fault, limit)
        if effect.kind not in ("local", "status") or (effect.kind == "status" and effect.status not in OBSERVED_STATUSES):
            continue
        pool, _ = split_target(fault.target)
        failure = try_failure(fault, effect, limit)
        if retried_away(scenario, failure) and len(resolve(fault.target, scenario.pools)) < scenario.pools[pool]:
            return [Hit(PATH, f"covers {failure}: {fault.label} makes every try on the replica fail "
                        f"({effect.why}); HAProxy retries each on another server and, as 2.6 reports only a "
                        "request's last try to observe, never counts it, so observe never marks the replica DOWN "
                        f"(error-limit {od.consecutive_5xx} is never reached; HAProxy issue #2679, fixed in 3.1); "
                        "rely on an active check that sees the fault (path: /health/deep), or leave this failure "
                        "out of retry_on")]
    return []


TRAP = Trap("haproxy.observe-retries", "haproxy", "error",
            "observe with retries: HAProxy 2.6 reports only a request's last try, so errors retried on another "
            "server never count toward error-limit", check)
