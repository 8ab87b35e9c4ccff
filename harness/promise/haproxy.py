"""HAProxy 2.6: when its configuration lets it detect a fault and readmit the replica.

The formulas of docs/gateway-health.md (HAProxy), with the scenario's numbers as
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
fact of the run: the journal's ``hosts`` events show each server's check status in HAProxy's words,
``UP 1/2 INI`` until its first check and ``UP L7OK`` once one passed; a server whose first passed
check was seen at or before the fault's start was past its start-up state (``first_check_passed``).
Where the journal does not say (no run: validate and lint; an older journal), the nominal bound: the
fault starts ``at`` + ``gateway_up`` after HAProxy started (``LoadFacts``: the gateway was up that long
before the load; 0 without a run), and the first check has ended by ``inter``·(1+s) + the check's time
limit after the start.

Passive (``observe``) hears of a request's errors only as HAProxy 2.6 reports them: a failed connection
before its retry, anything else (a 5xx, an empty answer, a response timeout) only from a request's last
try. With retries on another server (``option redispatch 1``) the errors a retry replaces never count,
so a replica broken alone is never marked DOWN by observe (see ``passive_detection``).
"""

from __future__ import annotations

from harness.faults import Fault
from harness.gateways.haproxy import retry_on_words
from harness.promise.effects import RESTARTING_KINDS, RequestEffect, check_effect, request_effect
from harness.promise.envoy import ARRIVAL_SLACK, CHECK_OVERHEAD
from harness.promise.load import LoadFacts, nominal_facts
from harness.promise.window import Never, Promise, Unknown, Window, earliest_of
from harness.scenario import Scenario
from harness.targets import resolve, split_target
from harness.timeline import FlagsChange

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


# HAProxy's check status of a check that passed (its stats' check_status); INI: no check has ended yet
PASSED_CHECK = frozenset({"L4OK", "L6OK", "L7OK", "L7OKC"})
NO_CHECK_YET = "INI"


def first_check_passed(changes: tuple[FlagsChange, ...]) -> float | None:
    """When the journal first showed a passed check of the server (its flags' check status L4OK, L6OK or
    L7OK, no longer INI): its first check had passed by then. None: never seen passed."""
    for change in changes:
        words = set(change.flags.split())
        if words & PASSED_CHECK and NO_CHECK_YET not in words:
            return change.t
    return None


def startup_state(scenario: Scenario, fault: Fault, facts: LoadFacts | None) -> tuple[bool, str]:
    """Whether the fault may start before a server's first check ended (HAProxy's start-up state), and
    from which fact: the moment each server's first check was seen passed, else the nominal bound."""
    up = facts.gateway_up if facts is not None else 0.0
    nominal = fault.at + up < first_checks_done_by(scenario)
    nominal_why = (f"the fault starts {fault.at:g}s into the load, {up:.3g}s after HAProxy was up, "
                   + ("maybe before" if nominal else "after") + " the server's first check had ended (within "
                   f"{first_checks_done_by(scenario):g}s of its start)")
    if facts is None or not facts.flags:
        return nominal, nominal_why
    seen: list[str] = []
    for replica in resolve(fault.target, scenario.pools):
        changes = facts.flags.get(replica, ())
        passed = first_check_passed(changes)
        if passed is None:
            if any(NO_CHECK_YET in change.flags.split() for change in changes):
                return True, f"{replica}'s first check was never seen passed (HAProxy's check status stayed INI)"
            return nominal, nominal_why  # the journal does not say
        if passed > fault.at:
            return True, (f"{replica}'s first check was seen passed only {passed:.3g}s into the load, after the "
                          f"fault's start at {fault.at:g}s")
        seen.append(f"{replica}'s by {passed:.3g}s")
    return False, "every first check had passed before the fault (" + ", ".join(seen) + ")"


def may_precede_first_check(scenario: Scenario, fault: Fault, facts: LoadFacts | None) -> bool:
    """Whether the fault may start before a server's first check ended (HAProxy's start-up state)."""
    return startup_state(scenario, fault, facts)[0]


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
    startup, startup_why = startup_state(scenario, fault, facts)
    if startup:
        earliest = d
    latest = inter * spread + fall * d + (fall - 1) * fast * spread + fall * CHECK_OVERHEAD
    return Window(earliest, latest,
                  f"active check: {effect.why} ({d:g}s per check); fall {fall} failed checks, the first within "
                  f"inter {inter:g}s, then fastinter {fast:g}s apart"
                  + (f", ±{scenario.gateway.haproxy.spread_checks}% spread" if spread > 1 else "")
                  + (f"; {startup_why}: one failed check may mark it DOWN (start-up state: health = rise)"
                     if startup else "")
                  + f"; +{CHECK_OVERHEAD:g}s per check")


def _try_limit(scenario: Scenario) -> float:
    gateway = scenario.gateway
    if gateway.retries is not None and gateway.retries.per_try_timeout:
        return gateway.retries.per_try_timeout
    return gateway.request_timeout


# Where HAProxy 2.6 reports a try to observe (health_adjust(), src/backend.c and src/http_ana.c): a failed
# connection or TLS handshake (retry-on conn-failure) in back_handle_st_cer(), BEFORE its retry; an answer's
# status, an empty answer (the connection closed or reset before a response) and a response timeout in
# http_wait_for_response(), AFTER the L7 retry: a try that retry-on retries is never reported, only each
# request's last try. HAProxy issue #2679, fixed in 3.1 (commit 2a5da31 "Adjust the server status before
# the L7 retries"); Debian 12's 2.6.12 does not have the fix. Measured on 2.6.12 (docs/gateways.md,
# "Passive detection under retries"): chat[0] answering 500 with retries 1 on 5xx: 69 requests retried
# on another server, 0 client errors, observe never fired; without retries it was DOWN after 0.30s.
CONNECT_FAILURE = "conn-failure"
OBSERVED_STATUSES = (500, 502, 503, 504)  # observe layer7 counts every 5xx but 501 and 505


def try_failure(fault: Fault, effect: RequestEffect, limit: float) -> str:
    """How one try to the faulty replica fails, as HAProxy's retry-on keyword for it."""
    if effect.kind == "status":
        return str(effect.status)
    if fault.kind in ("down", "cert"):
        return CONNECT_FAILURE  # Toxiproxy's listener refuses (down), the TLS handshake fails (cert)
    if limit > 0 and effect.takes >= limit:
        return "response-timeout"
    return "empty-response"  # Toxiproxy accepted the connection, then closed or reset it without an answer


def retried_away(scenario: Scenario, failure: str) -> bool:
    """Whether HAProxy retries such a try with an L7 retry (which observe never hears of)."""
    retries = scenario.gateway.retries
    return (retries is not None and retries.num_retries >= 1 and failure != CONNECT_FAILURE
            and failure in retry_on_words(retries))


def passive_detection(scenario: Scenario, fault: Fault, facts: LoadFacts | None = None) -> Promise:
    """``observe`` with ``on-error mark-down``: DOWN at the error-limit-th consecutive error it hears of."""
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
    limit = _try_limit(scenario)
    effect = request_effect(fault, limit)
    if effect.kind == "unknown":
        return Unknown(effect.why)
    if effect.kind in ("ok", "hangs"):
        return Never(f"observe sees no error: {effect.why}")
    if effect.kind == "status" and (options.observe == LAYER4_ONLY or effect.status not in OBSERVED_STATUSES):
        return Never(f"observe {options.observe} does not count {effect.why}")
    failure = try_failure(fault, effect, limit)
    if options.observe == LAYER4_ONLY and failure != CONNECT_FAILURE:
        return Never(f"observe layer4 counts failed connections only, and the connection succeeds ({effect.why}): "
                     "every established connection resets its count")
    size, broken = scenario.pools[pool], len(resolve(fault.target, scenario.pools))
    retried = retried_away(scenario, failure)
    if retried and broken < size:
        return Never(f"HAProxy 2.6 reports only a request's last try to observe: retry-on {failure} retries every "
                     f"try that fails on the replica ({effect.why}) on another server (option redispatch 1), "
                     "which answers, so observe never hears of these errors (HAProxy issue #2679, fixed in 3.1)")
    n = od.consecutive_5xx
    tries = scenario.gateway.retries.num_retries + 1 if retried and scenario.gateway.retries else 1
    d = tries * effect.takes  # every replica broken: a request's errors reach observe once, after its last try
    rate = facts.users / (facts.users / facts.rate + d / size) if facts.users else facts.rate
    in_flight = facts.users / rate if facts.users else 0.0
    return Window(d, d + in_flight + ARRIVAL_SLACK * n * size / rate,
                  f"observe {options.observe}: error-limit {n} errors in a row ({effect.why}) on one of {size} "
                  f"servers at {rate:.0f} requests/s ({facts.source}), then on-error mark-down"
                  + (f"; retry-on {failure} retries them, and only each request's last try (of {tries}, on "
                     "another broken server) reaches observe" if retried else ""))


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
