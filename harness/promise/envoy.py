"""Envoy 1.40: when its configuration lets it detect a fault and readmit the replica.

The formulas of docs/gateway-health.md (Envoy), with the scenario's numbers, as
rendered by harness/gateways/envoy.py (no interval jitter, unhealthy and edge intervals equal
to ``interval``, ``successful_active_health_check_uneject_host`` left at its default true).

The windows are about what the admin API shows (the journal's health events), and
``update_merge_window`` (``gateway.envoy``, 0s unless set) does not move that: measured on 1.40,
the admin API shows a change at once, and only the workers' load balancers get it up to one window
later (what clients see: the lint's envoy.merge-window, harness/lint/envoy_merge_window.py).

Active checks. A check's period is the interval *after* the previous check ended. While a
cluster has carried no traffic every check waits ``no_traffic_interval`` instead; the timer
armed before the first request still runs out after the load began. With ``d`` the time a
failing check takes (0 for a reset, ``timeout`` for a blackhole), T ``unhealthy_threshold``,
H ``healthy_threshold``, I the interval and W the longest wait for the first check after
the fault (I, or what is left of a no-traffic timer):

    network/timeout failure:  detect  in [T·d + (T−1)·I,  W + T·d + (T−1)·I]
    unexpected status:        detect  in [d,  W + d]            (Envoy ignores T)
    readmission:              recover in [(H−1)·I,  r + I + (H−1)·I]
                              r: a check hung in a blackhole when it healed runs out first

Outlier detection (consecutive errors, evaluated on each response): the N-th consecutive
failure on the host, at the load's rate, round robin over the pool's k replicas; un-ejected
at the first sweep after the ejection time, or by the next passing active check.
"""

from __future__ import annotations

from harness.faults import Fault
from harness.promise.effects import RESTARTING_KINDS, check_effect, request_effect
from harness.promise.load import LoadFacts, nominal_facts
from harness.promise.window import Never, Promise, Unknown, Window, earliest_of
from harness.scenario import Scenario
from harness.targets import resolve, split_target

# Covers: one check's loopback round trip through Toxiproxy. Measured: 1-2ms per check (HAProxy's
# check duration in show stat, scenarios/compare/all-down on HAProxy); 20ms leaves room for a busy machine.
CHECK_OVERHEAD = 0.02
# Covers: the load's rate is an average over the baseline; the window lets it halve during the fault.
# Not a measurement: a design bound, which the comparison suite's runs check (docs/gateways.md).
ARRIVAL_SLACK = 2.0
MAX_EJECTION_TIME_FLOOR = 300.0  # Envoy's default max_ejection_time is max(300s, base_ejection_time)
# Measured on Envoy 1.40 (scenarios/traps/envoy-uneject-flapping.yaml, interval 1s): a host outlier
# detection ejected while its active checks pass is un-ejected 1.9-2.0s later, by the second check.
UNEJECT_CHECKS = 2


def _pool(scenario: Scenario, fault: Fault) -> tuple[str, int, int]:
    pool, _ = split_target(fault.target)
    return pool, scenario.pools[pool], len(resolve(fault.target, scenario.pools))


def _facts(scenario: Scenario, fault: Fault, facts: LoadFacts | None) -> LoadFacts:
    return facts or nominal_facts(scenario, split_target(fault.target)[0])


def _check_step(scenario: Scenario, facts: LoadFacts) -> tuple[float, str]:
    hc = scenario.gateway.health_check
    assert hc is not None
    if facts.first_traffic is None:
        return hc.no_traffic_interval, f"no_traffic_interval {hc.no_traffic_interval:g}s (the pool never carries traffic)"
    return hc.interval, f"interval {hc.interval:g}s"


def _first_wait(scenario: Scenario, fault: Fault, facts: LoadFacts) -> tuple[float, str]:
    """The longest wait, from the fault's start, for the first check: one interval, or the rest of
    a timer armed at the no-traffic interval before the pool's first request."""
    hc = scenario.gateway.health_check
    assert hc is not None
    if facts.first_traffic is None:
        return hc.no_traffic_interval, f"{hc.no_traffic_interval:g}s (no_traffic_interval)"
    leftover = facts.first_traffic + hc.no_traffic_interval - fault.at
    if leftover > hc.interval:
        return leftover, (f"{leftover:.3g}s (a check armed at no_traffic_interval {hc.no_traffic_interval:g}s "
                          f"before the first request at {facts.first_traffic:.2f}s is still pending)")
    return hc.interval, f"{hc.interval:g}s (interval)"


def active_detection(scenario: Scenario, fault: Fault, facts: LoadFacts | None = None) -> Promise:
    """When Envoy's active health check marks the fault's replicas unhealthy."""
    hc = scenario.gateway.health_check
    if hc is None:
        return Never("no active health check is configured")
    facts = _facts(scenario, fault, facts)
    effect = check_effect(fault, hc.path, hc.timeout, hc.expected_statuses)
    if effect.kind == "passes":
        return Never(f"active checks keep passing: {effect.why}")
    if effect.kind == "unknown":
        return Unknown(effect.why)
    wait, wait_how = _first_wait(scenario, fault, facts)
    step, step_how = _check_step(scenario, facts)
    d = effect.takes
    if effect.kind == "status":
        return Window(d, wait + d + CHECK_OVERHEAD,
                      f"active check: {effect.why}, which ejects on the first check (unhealthy_threshold "
                      f"is ignored): within the first check, at most {wait_how} away")
    t = hc.unhealthy_threshold
    earliest = t * d + (t - 1) * step
    latest = wait + t * d + (t - 1) * step + t * CHECK_OVERHEAD
    return Window(earliest, latest,
                  f"active check: {effect.why} ({d:g}s per check); unhealthy_threshold {t} checks, "
                  f"{step_how} apart: from {t}·{d:g}s + {t - 1}·{step:g}s; the first check is at most "
                  f"{wait_how} away; +{CHECK_OVERHEAD:g}s per check")


def _try_limit(scenario: Scenario) -> float:
    """How long the gateway lets one try run before it gives up (0: forever)."""
    gateway = scenario.gateway
    if gateway.retries is not None and gateway.retries.per_try_timeout:
        return gateway.retries.per_try_timeout
    return gateway.request_timeout


def _consecutive(scenario: Scenario, kind: str, status: int | None) -> tuple[int, str] | None:
    """The smallest consecutive-error threshold that counts this kind of failure."""
    od = scenario.gateway.outlier_detection
    assert od is not None
    counters: list[tuple[int, str]] = []
    gateway_error = kind == "local" or status in (502, 503, 504)
    if od.consecutive_5xx and (kind == "local" or (status is not None and 500 <= status < 600)):
        counters.append((od.consecutive_5xx, "consecutive_5xx"))
    if od.consecutive_gateway_failure and gateway_error:
        counters.append((od.consecutive_gateway_failure, "consecutive_gateway_failure"))
    return min(counters) if counters else None


def passive_detection(scenario: Scenario, fault: Fault, facts: LoadFacts | None = None) -> Promise:
    """When outlier detection ejects the fault's replicas, at the load's request rate.

    Retries change nothing here: Envoy's router reports every try's answer (and every reset or failed
    connection) to outlier detection before it decides to retry (router.cc ``onUpstreamHeaders()``:
    ``putHttpResponseCode()``, then ``shouldRetryHeaders()``), so a retried 5xx counts (measured:
    scenarios/compare/passive-retries.yaml, docs/gateways.md)."""
    od = scenario.gateway.outlier_detection
    if od is None:
        return Never("no outlier detection is configured")
    pool, size, broken = _pool(scenario, fault)
    if broken * 100 > od.max_ejection_percent * size:
        return Never(f"max_ejection_percent {od.max_ejection_percent}% lets Envoy eject at most "
                     f"{od.max_ejection_percent * size // 100} of {size} replicas of {pool!r} "
                     f"(it checks (ejected + 1) / replicas ≤ {od.max_ejection_percent}%)")
    facts = _facts(scenario, fault, facts)
    if facts.first_traffic is None or facts.rate <= 0:
        return Never(f"outlier detection needs traffic and the load sends none to {pool!r}")
    effect = request_effect(fault, _try_limit(scenario))
    if effect.kind == "unknown":
        return Unknown(effect.why)
    if effect.kind in ("ok", "hangs"):
        return Never(f"outlier detection sees no error: {effect.why}")
    threshold = _consecutive(scenario, effect.kind, effect.status)
    if threshold is None:
        return Never(f"outlier detection does not count {effect.why}")
    n, counter = threshold
    d = effect.takes
    # Closed loop: each user waits for its answer, so a slow failure slows the whole load.
    rate = facts.users / (facts.users / facts.rate + d / size) if facts.users else facts.rate
    arrivals = n * size / rate
    in_flight = facts.users / rate if facts.users else 0.0  # requests sent before the fault still succeed
    # ... or, when their answer had not yet passed when the fault began, fail with it: their tries
    # started up to one request time before the fault, so they give up that much earlier.
    return Window(max(0.0, d - in_flight), d + in_flight + ARRIVAL_SLACK * arrivals,
                  f"outlier detection: {counter} {n} errors ({effect.why}) on one of {size} replicas at "
                  f"{rate:.0f} requests/s ({facts.source}): {d:g}s ∓ the requests in flight when it began "
                  f"({in_flight:.3g}s) + {n}·{size}/{rate:.0f}s ×{ARRIVAL_SLACK:g} (the rate may halve)")


def detection_window(scenario: Scenario, fault: Fault, facts: LoadFacts | None = None) -> Promise:
    """Fault start → Envoy's admin API shows every replica of the fault unhealthy."""
    return earliest_of([active_detection(scenario, fault, facts), passive_detection(scenario, fault, facts)])


def recovery_window(scenario: Scenario, fault: Fault, facts: LoadFacts | None = None,
                    after: str = "fault_end") -> Promise:
    """The anchor (the fault's end, or with ``after='restart_ready'`` the restarted process being
    ready) → Envoy shows every replica of the fault healthy again."""
    if fault.kind in RESTARTING_KINDS and after == "fault_end":
        return Unknown("the replica comes back when the supervisor's restart is ready, not when the fault "
                       "ends; use after: restart_ready")
    facts = _facts(scenario, fault, facts)
    hc = scenario.gateway.health_check
    od = scenario.gateway.outlier_detection
    if hc is not None:
        step, step_how = _check_step(scenario, facts)
        effect = check_effect(fault, hc.path, hc.timeout, hc.expected_statuses)
        if effect.kind == "unknown":
            return Unknown(effect.why)
        if effect.kind == "passes":
            ejection = passive_detection(scenario, fault, facts)
            if not isinstance(ejection, Window):
                return ejection if isinstance(ejection, Unknown) else \
                    Never("nothing marks the replica unhealthy, so there is nothing to readmit")
            return Window(0.0, UNEJECT_CHECKS * (step + CHECK_OVERHEAD),
                          f"a passing active check un-ejects the replica outlier detection ejected "
                          f"(successful_active_health_check_uneject_host); measured: the second check after the "
                          f"ejection does it, so within {UNEJECT_CHECKS} checks, {step_how}")
        hung = hc.timeout if effect.kind == "timeout" and after == "fault_end" else 0.0
        h = hc.healthy_threshold
        earliest = (h - 1) * step
        latest = hung + step + (h - 1) * step + h * CHECK_OVERHEAD
        hung_how = f"a check hung when it healed runs out its timeout {hung:g}s, then " if hung else ""
        return Window(earliest, latest,
                      f"active check: healthy_threshold {h} passing checks {step_how} apart; {hung_how}the first "
                      f"passing check is at most {step:g}s away: from {h - 1}·{step:g}s; +{CHECK_OVERHEAD:g}s per check")
    if od is None:
        return Never("no health checking is configured, so nothing marks the replica unhealthy")
    ejection = passive_detection(scenario, fault, facts)
    if not isinstance(ejection, Window):
        return ejection if isinstance(ejection, Unknown) else \
            Never(f"nothing marks the replica unhealthy, so there is nothing to readmit: {ejection.why}")
    # Outlier detection alone: un-ejection only at a sweep after the ejection time, which grows
    # by base_ejection_time with every ejection in a row (a replica still broken is re-ejected).
    duration = fault.duration
    ejections, served = 1, 0.0
    while served + od.base_ejection_time * ejections <= duration:
        served += od.base_ejection_time * ejections
        ejections += 1
    longest = min(od.base_ejection_time * ejections, max(MAX_EJECTION_TIME_FLOOR, od.base_ejection_time))
    return Window(0.0, longest + od.interval,
                  f"outlier detection: the ejection lasts base_ejection_time {od.base_ejection_time:g}s × the "
                  f"ejections in a row (at most {ejections} in {duration:g}s), and ends at the next sweep "
                  f"(interval {od.interval:g}s): at most {longest:g}s + {od.interval:g}s")
