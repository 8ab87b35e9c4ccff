"""HAProxy 2.6: when its configuration lets it detect a fault and readmit the replica.

The formulas of ../shared/notes/gateway-health.md §2, with the scenario's numbers as
harness/gateways/haproxy.py renders them: ``inter`` = health_check.interval, ``fall`` =
unhealthy_threshold, ``rise`` = healthy_threshold, ``timeout check`` = health_check.timeout,
``fastinter``/``downinter`` from gateway.haproxy (default ``inter``), ``spread-checks`` s% of
noise on every interval, and for passive checks ``observe`` + ``error-limit`` =
outlier_detection.consecutive_5xx + ``on-error``.

The next check is armed when the previous one ends. A check of a server that does not answer fails
after max(``timeout check``, min(``timeout connect``, ``inter``)) (``check_time_limit``, measured). A fully UP server is checked every
``inter``; while it goes down (and while it comes back up) every ``fastinter``; a fully DOWN
one every ``downinter``. Every check that fails counts: HAProxy has no "bad status ejects at
once". With d the time a failing check takes (0 refused/reset, ``timeout check`` for a
blackhole) and F fastinter, D downinter:

    detect  in [fall·d + (fall−1)·F,  inter(1+s) + fall·d + (fall−1)·F(1+s)]
    recover in [(rise−1)·F,  r + D(1+s) + (rise−1)·F(1+s)]     r: a check hung when it healed

At start-up HAProxy 2.6 sets each server's health to ``rise``: UP, "but will fall down at the
first failure"; its first check runs ``inter``·i/n after start (server i of n) and, passing, lifts
health to where ``fall`` failures are needed. So a fault that starts before a server's first check
has ended is detected after one failed check (the earliest becomes d). Whether that can be is a
fact of the run: the fault starts ``at`` + ``gateway_up`` after HAProxy started (``LoadFacts``:
the gateway was up that long before the load; 0 without a run), and the first check has ended by
``inter``·(1+s) + ``timeout check`` after the start.
"""

from __future__ import annotations

from harness.faults import Fault
from harness.promise.effects import RESTARTING_KINDS, check_effect, request_effect
from harness.promise.envoy import ARRIVAL_SLACK, CHECK_OVERHEAD
from harness.promise.load import LoadFacts, nominal_facts
from harness.promise.window import Never, Promise, Unknown, Window, earliest_of
from harness.scenario import Scenario
from harness.targets import split_target

LAYER4_ONLY = "layer4"
TOXIPROXY_BLACKHOLE = "timeout"  # the Toxiproxy toxic (a frozen process is a true blackhole)


def _intervals(scenario: Scenario) -> tuple[float, float, float, float]:
    """inter, fastinter, downinter and the spread factor (1 + s%)."""
    hc = scenario.gateway.health_check
    assert hc is not None
    options = scenario.gateway.haproxy
    inter = hc.interval
    return (inter, options.fastinter or inter, options.downinter or inter, 1 + options.spread_checks / 100)


def check_time_limit(scenario: Scenario) -> float:
    """How long a check of a server that does not answer runs before it fails: HAProxy 2.6 arms the check's
    timer at min(``timeout connect``, ``inter``) when it connects and adds ``timeout check`` only when the
    connection is seen established. Measured through Toxiproxy (which accepts at once): with
    ``timeout check`` 500ms, ``timeout connect`` and ``inter`` 1s, a check of a 1.5s-late replica failed
    L7TOUT 1.0s after it started (scenarios/compare/slow-replica.yaml, two checks in a row); with
    ``timeout check`` 1s, also 1.0s. So the larger of the two bounds it."""
    hc = scenario.gateway.health_check
    assert hc is not None
    return max(hc.timeout, min(scenario.gateway.connect_timeout, hc.interval))


def first_checks_done_by(scenario: Scenario) -> float:
    """Seconds after HAProxy's start by which every server's first check has ended: it starts within
    ``inter``·(1+s) (server i of n at ``inter``·i/n) and lasts at most ``check_time_limit``."""
    inter, _, _, spread = _intervals(scenario)
    return inter * spread + check_time_limit(scenario)


def may_precede_first_check(scenario: Scenario, fault: Fault, facts: LoadFacts | None) -> bool:
    """Whether the fault may start before a server's first check ended (HAProxy's start-up state)."""
    up = facts.gateway_up if facts is not None else 0.0
    return fault.at + up < first_checks_done_by(scenario)


def active_detection(scenario: Scenario, fault: Fault, facts: LoadFacts | None = None) -> Promise:
    hc = scenario.gateway.health_check
    if hc is None:
        return Never("no active health check is configured")
    effect = check_effect(fault, hc.path, check_time_limit(scenario), hc.expected_statuses)
    if effect.kind == "passes":
        return Never(f"active checks keep passing: {effect.why}")
    if effect.kind == "unknown":
        return Unknown(effect.why)
    inter, fast, _, spread = _intervals(scenario)
    fall, d = hc.unhealthy_threshold, effect.takes
    earliest = fall * d + (fall - 1) * fast
    if fault.kind == TOXIPROXY_BLACKHOLE and effect.kind == "timeout":
        # HAProxy's check (a new connection, closed by the replica after its answer) saw the blackhole as
        # an empty answer within 2ms, not a timeout (measured: L7RSP "invalid response", check duration
        # 1-2ms, scenarios/compare/all-down-haproxy.yaml): the earliest is that of an immediate failure.
        earliest = (fall - 1) * fast
    startup = may_precede_first_check(scenario, fault, facts)
    if startup:
        earliest = d
    latest = inter * spread + fall * d + (fall - 1) * fast * spread + fall * CHECK_OVERHEAD
    return Window(earliest, latest,
                  f"active check: {effect.why} ({d:g}s per check); fall {fall} failed checks, the first within "
                  f"inter {inter:g}s, then fastinter {fast:g}s apart"
                  + (f", ±{scenario.gateway.haproxy.spread_checks}% spread" if spread > 1 else "")
                  + (f"; the fault starts {fault.at:g}s into the load, {facts.gateway_up if facts else 0:.3g}s after "
                     f"HAProxy was up, maybe before the server's first check had ended (within "
                     f"{first_checks_done_by(scenario):g}s of its start), when one failed check marks it DOWN "
                     "(start-up state: health = rise)" if startup else "")
                  + f"; +{CHECK_OVERHEAD:g}s per check")


def _try_limit(scenario: Scenario) -> float:
    gateway = scenario.gateway
    if gateway.retries is not None and gateway.retries.per_try_timeout:
        return gateway.retries.per_try_timeout
    return gateway.request_timeout


def passive_detection(scenario: Scenario, fault: Fault, facts: LoadFacts | None = None) -> Promise:
    """``observe`` with ``on-error mark-down``: DOWN at the error-limit-th consecutive error."""
    od, hc = scenario.gateway.outlier_detection, scenario.gateway.health_check
    if od is None or hc is None or not od.consecutive_5xx:
        return Never("no passive check (observe) is configured")
    options = scenario.gateway.haproxy
    if options.on_error != "mark-down":
        return Unknown(f"on-error {options.on_error} counts toward the active checks; only mark-down is modelled")
    pool, _ = split_target(fault.target)
    facts = facts or nominal_facts(scenario, pool)
    if facts.first_traffic is None or facts.rate <= 0:
        return Never(f"observe needs traffic and the load sends none to {pool!r}")
    effect = request_effect(fault, _try_limit(scenario))
    if effect.kind == "unknown":
        return Unknown(effect.why)
    if effect.kind in ("ok", "hangs"):
        return Never(f"observe sees no error: {effect.why}")
    if effect.kind == "status" and (options.observe == LAYER4_ONLY or effect.status not in (500, 502, 503, 504)):
        return Never(f"observe {options.observe} does not count {effect.why}")
    size, n, d = scenario.pools[pool], od.consecutive_5xx, effect.takes
    rate = facts.users / (facts.users / facts.rate + d / size) if facts.users else facts.rate
    in_flight = facts.users / rate if facts.users else 0.0
    return Window(d, d + in_flight + ARRIVAL_SLACK * n * size / rate,
                  f"observe {options.observe}: error-limit {n} errors in a row ({effect.why}) on one of {size} "
                  f"servers at {rate:.0f} requests/s ({facts.source}), then on-error mark-down")


def detection_window(scenario: Scenario, fault: Fault, facts: LoadFacts | None = None) -> Promise:
    return earliest_of([active_detection(scenario, fault, facts), passive_detection(scenario, fault, facts)])


def recovery_window(scenario: Scenario, fault: Fault, facts: LoadFacts | None = None,
                    after: str = "fault_end") -> Promise:
    hc = scenario.gateway.health_check
    if fault.kind in RESTARTING_KINDS and after == "fault_end":
        return Unknown("the replica comes back when the supervisor's restart is ready, not when the fault "
                       "ends; use after: restart_ready")
    if hc is None:
        return Never("no active health check is configured, so nothing marks the server DOWN")
    effect = check_effect(fault, hc.path, check_time_limit(scenario), hc.expected_statuses)
    inter, fast, down, spread = _intervals(scenario)
    rise = hc.healthy_threshold
    if effect.kind == "unknown":
        return Unknown(effect.why)
    if effect.kind == "passes":
        ejected = passive_detection(scenario, fault, facts)
        if not isinstance(ejected, Window):
            return ejected if isinstance(ejected, Unknown) else \
                Never("nothing marks the server DOWN, so there is nothing to readmit")
        # Marked down by observe while its checks pass: it is back after rise checks, during the fault too.
        latest = down * spread + (rise - 1) * fast * spread + rise * CHECK_OVERHEAD
        return Window(0.0, latest, f"observe marked it DOWN while its checks pass: rise {rise} passing checks "
                      f"(downinter {down:g}s, then fastinter {fast:g}s) bring it back, during the fault too")
    hung = check_time_limit(scenario) if effect.kind == "timeout" and after == "fault_end" else 0.0
    earliest = (rise - 1) * fast
    latest = hung + down * spread + (rise - 1) * fast * spread + rise * CHECK_OVERHEAD
    return Window(earliest, latest,
                  f"active check: rise {rise} passing checks; the first within downinter {down:g}s"
                  + (f" after a check hung when it healed runs out its timeout {hung:g}s" if hung else "")
                  + f", then fastinter {fast:g}s apart; +{CHECK_OVERHEAD:g}s per check")
