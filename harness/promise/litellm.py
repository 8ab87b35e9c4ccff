"""The LiteLLM proxy: when its configuration lets it take a deployment out and put it back.

As harness/gateways/litellm.py renders it (../shared/notes/gateway-health.md §4):

* active: ``background_health_checks`` every ``health_check_interval`` (the loop sleeps the
  interval after a round of checks), each a real chat completion per deployment, with
  ``enable_health_check_routing``: one failed check takes the deployment out, one passing check
  puts it back. A check is inference, so it fails as a client request would;
* passive: the router's cooldown, ``allowed_fails`` = consecutive_5xx − 1: the deployment cools
  down at the consecutive_5xx-th failed call within ``cooldown_time`` and comes back
  ``cooldown_time`` later, with no probe. A refused or reset connection counts: the proxy turns it
  into InternalServerError (500 'Connection error.'), whose text lacks the 'APIConnectionError' that
  ``_is_cooldown_required`` ignores (measured on 1.108.7: one refused call, cooled down for 10.08s;
  the research notes' "connection errors never cool down" does not hold here). The load's requests
  are spread at random (simple-shuffle), not round robin.

    detect  in [d,  I + d]  (check)   |   [d,  d + in-flight + 2·N·k/r]  (cooldown)
    recover in [0,  r + I]  (check)   |   [0,  cooldown_time]            (cooldown)
"""

from __future__ import annotations

from harness.faults import Fault
from harness.promise.effects import RESTARTING_KINDS, CheckEffect, RequestEffect, request_effect
from harness.promise.envoy import ARRIVAL_SLACK, CHECK_OVERHEAD
from harness.promise.load import LoadFacts, nominal_facts
from harness.promise.window import Never, Promise, Unknown, Window, earliest_of
from harness.scenario import Scenario
from harness.targets import split_target


def check_effect(fault: Fault, timeout: float) -> CheckEffect:
    """A LiteLLM health check is a chat completion (POST /v1/chat/completions): it fails as a
    client request with the check's timeout would."""
    effect = request_effect(fault, timeout)
    if effect.kind == "local":
        return CheckEffect("timeout" if effect.takes >= timeout else "network", effect.takes, effect.why)
    if effect.kind == "status":
        return CheckEffect("status", effect.takes, effect.why, effect.status)
    if effect.kind == "ok":
        return CheckEffect("passes", why=effect.why)
    if effect.kind == "hangs":
        return CheckEffect("timeout", timeout, effect.why)
    return CheckEffect("unknown", why=effect.why)


def _check(scenario: Scenario, fault: Fault) -> Promise | None:
    """None when checks see the fault (then the caller computes the window), else why not."""
    hc = scenario.gateway.health_check
    if hc is None:
        return Never("no background health check is configured")
    if not scenario.gateway.litellm.health_check_routing:
        return Never("health_check_routing is off: checks only report, they do not route")
    effect = check_effect(fault, hc.timeout)
    if effect.kind == "passes":
        return Never(f"its health checks are chat completions, which keep working: {effect.why}")
    if effect.kind == "unknown":
        return Unknown(effect.why)
    return None


def active_detection(scenario: Scenario, fault: Fault, facts: LoadFacts | None = None) -> Promise:
    hc = scenario.gateway.health_check
    if (why := _check(scenario, fault)) is not None or hc is None:
        return why or Never("no background health check is configured")
    effect = check_effect(fault, hc.timeout)
    d = effect.takes
    return Window(d, hc.interval + d + CHECK_OVERHEAD,
                  f"background health check (a chat completion, {effect.why}): the next round, at most "
                  f"health_check_interval {hc.interval:g}s away, takes the deployment out after one failure")


def passive_detection(scenario: Scenario, fault: Fault, facts: LoadFacts | None = None) -> Promise:
    od = scenario.gateway.outlier_detection
    if od is None:
        return Never("cooldowns are disabled (no outlier_detection)")
    retries = scenario.gateway.retries
    limit = retries.per_try_timeout if retries is not None and retries.per_try_timeout else \
        scenario.gateway.request_timeout
    effect = request_effect(fault, limit)
    if effect.kind == "local" and effect.takes == 0.0:
        # The proxy maps a refused or reset connection to InternalServerError (500 'Connection error.'),
        # whose text lacks the 'APIConnectionError' that _is_cooldown_required ignores: it cools down.
        effect = RequestEffect("status", 0.0, f"{effect.why} (LiteLLM answers 500 'Connection error.')", 500)
    if effect.kind == "unknown" or effect.kind == "local":
        return Unknown(effect.why if effect.kind == "unknown" else
                       f"{effect.why}: whether LiteLLM cools down on a timeout is not modelled")
    if effect.kind in ("ok", "hangs"):
        return Never(f"no call fails: {effect.why}")
    if effect.status is not None and 400 <= effect.status < 500 and effect.status not in (401, 404, 408, 429):
        return Never(f"{effect.why}: LiteLLM does not cool down on this 4xx")
    pool, _ = split_target(fault.target)
    facts = facts or nominal_facts(scenario, pool)
    if facts.first_traffic is None or facts.rate <= 0:
        return Never(f"cooldowns need traffic and the load sends none to {pool!r}")
    n, size, d = od.consecutive_5xx or 1, scenario.pools[pool], effect.takes
    in_flight = facts.users / facts.rate if facts.users else 0.0
    return Window(d, d + in_flight + ARRIVAL_SLACK * n * size / facts.rate,
                  f"cooldown: allowed_fails {n - 1}, so the {n}th failed call ({effect.why}) on one of {size} "
                  f"deployments, picked at random at {facts.rate:.0f} requests/s ({facts.source})")


def detection_window(scenario: Scenario, fault: Fault, facts: LoadFacts | None = None) -> Promise:
    return earliest_of([active_detection(scenario, fault, facts), passive_detection(scenario, fault, facts)])


def recovery_window(scenario: Scenario, fault: Fault, facts: LoadFacts | None = None,
                    after: str = "fault_end") -> Promise:
    if fault.kind in RESTARTING_KINDS and after == "fault_end":
        return Unknown("the replica comes back when the supervisor's restart is ready, not when the fault "
                       "ends; use after: restart_ready")
    hc, od = scenario.gateway.health_check, scenario.gateway.outlier_detection
    windows: list[Window] = []
    cooled = passive_detection(scenario, fault, facts)
    if isinstance(cooled, Window) and od is not None:
        windows.append(Window(0.0, od.base_ejection_time,
                              f"cooldown: the deployment is back cooldown_time {od.base_ejection_time:g}s after it "
                              "cooled down (no probe); it cooled down at most then before the fault ended"))
    checked = active_detection(scenario, fault, facts)
    if isinstance(checked, Window) and hc is not None:
        hung = hc.timeout if checked.earliest >= hc.timeout and after == "fault_end" else 0.0
        windows.append(Window(0.0, hung + hc.interval + CHECK_OVERHEAD,
                              f"background health check: the next round after it healed, at most "
                              f"{hc.interval:g}s away" + (f" (+{hung:g}s for a check hung when it healed)" if hung else "")))
    if not windows:
        for promise in (checked, cooled):
            if isinstance(promise, Unknown):
                return promise
        return Never("nothing takes the deployment out, so there is nothing to put back")
    # Back only when every mechanism that took it out lets it in: the latest of the latests.
    return Window(0.0, max(w.latest for w in windows), " and ".join(w.how for w in windows))
