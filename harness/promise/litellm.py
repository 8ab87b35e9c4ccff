"""The LiteLLM proxy: when its configuration lets it take a deployment out and put it back.

As harness/gateways/litellm.py renders it (docs/gateway-health.md, LiteLLM proxy):

* active: ``background_health_checks``. LiteLLM 1.108.7 (proxy_server.py
  ``_run_background_health_check``) runs them in rounds: all deployments are checked at once
  (``asyncio.gather``; no ``health_check_concurrency`` is set), each check a real chat completion
  limited by ``asyncio.wait_for(health_check_timeout)`` (health_check.py ``run_with_timeout``). The
  round ends when its slowest check ends; only THEN are the verdicts written to the routing cache
  (``_write_health_state_to_router_cache``), all at once, and the loop then sleeps
  ``health_check_interval``: the next round starts interval after the previous one ENDS. One failed
  check takes the deployment out, one passing check puts it back (enable_health_check_routing).
  A check is inference, so it fails as a client request would;
* passive: the router's cooldown, ``allowed_fails`` = consecutive_5xx − 1: the deployment cools
  down at the consecutive_5xx-th failed call within ``cooldown_time`` and comes back
  ``cooldown_time`` later, with no probe. A refused or reset connection counts: the proxy turns it
  into InternalServerError (500 'Connection error.'), whose text lacks the 'APIConnectionError' that
  ``_is_cooldown_required`` ignores (measured on 1.108.7: one refused call, cooled down for 10.08s;
  the research notes' "connection errors never cool down" does not hold here). The load's requests
  are spread at random (simple-shuffle), not round robin. With cooldowns on, each failed check
  also starts a cooldown of ``cooldown_time`` (at the round's end).

In a run, the proxy stamps every round itself (harness/gateways/litellm_probe.py: its checks' start,
its verdicts' write; journalled as ``gateway.health_rounds``): R is the longest round and L the
latest any round started after the previous one's write + I, over the rounds that ended at or after
the fault's start (or end, for recovery). Without them (validate, lint, an older journal) R is the
nominal T + ROUND_OVERHEAD (T: health_check_timeout; every check, passing or not, is cut at T) and L
is 0 (ROUND_OVERHEAD covers the sleep's lateness too). With I = health_check_interval and d = how
long a check takes to fail:

    detect  in [d − P,  R + I + L + R]  (check: the round under way when the fault starts may have
                                     passed it; the next one starts I (+ L) after that round ends, and
                                     its verdict is written when its slowest check ends)
            |   [d − P,  d + in-flight + 2·N·k/r]  (cooldown)
    recover in [0,  R + I + L + R]  (check: the same, from the fault's end)
            |   [0,  cooldown_time], and R + cooldown_time when failed checks start cooldowns

The earliest is d − P, and in a run also W − P, where W is how long after the fault's start (its
``fault.started``, journalled before the fault is applied) the first round that ended after it wrote
its verdicts: a check verdict is written only when a round ends, and no round that ended before the
fault can have seen it. A check in flight when the fault starts can fail at once (a refused or reset
connection), so W is the only lower bound the rounds give; it lies above P only when no round
happened to end in the second after the fault began. (Recovery has no such bound: ``fault.cleared``
is journalled after the fault is cleared.)

The observer reads the verdicts through the proxy itself (GET /chaosgate/deployments, answered by
the same busy event loop, stamped before it is sent), so every window's margin adds P = PROBE_DELAY,
and a change can be stamped up to P before it happened.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.faults import Fault
from harness.gateways.litellm import PROBE_TIMEOUT
from harness.promise.effects import RESTARTING_KINDS, CheckEffect, RequestEffect, request_effect
from harness.promise.envoy import ARRIVAL_SLACK
from harness.promise.load import LoadFacts, nominal_facts
from harness.promise.window import OBSERVER_MARGIN, SCHEDULING_MARGIN, Never, Promise, Unknown, Window, earliest_of
from harness.scenario import Scenario
from harness.targets import split_target


# Nominal only (validate, lint; a run uses the proxy's stamped rounds): a round's time past its check timeout plus
# the next one's lateness; measured: a 2.10s round with a 0.5s timeout at load ~12 (LiteLLM's own log line).
ROUND_OVERHEAD = 1.6
# Covers: the observer's GET /chaosgate/deployments is answered by the proxy's own event loop. A sample is
# stamped before the GET is sent: a verdict written while the GET waits is stamped up to its duration
# early, and one written just after it was read waits for the next sample, up to that duration late.
# The adapter gives up on a GET after PROBE_TIMEOUT (no sample then), so that bounds both. Measured
# up to 0.55s per GET during the suite's runs (docs/gateways.md); not measured beyond that bound.
PROBE_DELAY = PROBE_TIMEOUT
LITELLM_MARGIN = OBSERVER_MARGIN + SCHEDULING_MARGIN + PROBE_DELAY


def round_length(timeout: float) -> float:
    """The nominal longest background round (before a run): every check is cut at the check timeout, plus overhead."""
    return timeout + ROUND_OVERHEAD


@dataclass(frozen=True)
class Rounds:
    """How long a round lasts (``longest``) and how late after the previous round's write + interval the
    next one starts (``late``), with the words that say where the figures come from."""

    longest: float
    late: float
    how: str

    def span(self, interval: float) -> float:
        """The latest a verdict can lag a change: the round under way, the sleep, the next round."""
        return self.longest + interval + self.late + self.longest


def rounds_after(scenario: Scenario, since: float, facts: LoadFacts | None) -> Rounds:
    """The rounds that matter to a change at ``since`` (seconds into the load): from the run's own stamps
    (every round that ended at or after it) when the journal has them, else nominal."""
    hc = scenario.gateway.health_check
    assert hc is not None
    stamped = sorted(facts.rounds) if facts is not None and facts.rounds is not None else []
    ended = [(start, written) for start, written in stamped if written >= since]
    if not ended:
        r = round_length(hc.timeout)
        return Rounds(r, 0.0, f"up to {r:g}s (check timeout {hc.timeout:g}s + {ROUND_OVERHEAD:g}s round overhead)")
    longest = max(written - start for start, written in ended)
    late = max([0.0, *(start - written - hc.interval for (_, written), (start, _) in zip(stamped, stamped[1:])
                       if start >= since)])
    return Rounds(longest, late, f"up to {longest:.3g}s, the longest of the {len(ended)} rounds the proxy ran from "
                                 f"then on (its own stamps; check timeout {hc.timeout:g}s), each starting at most "
                                 f"{late:.3g}s late")


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
    d, rounds = effect.takes, rounds_after(scenario, fault.at, facts)
    r = rounds.longest
    first = first_verdict_after(facts)
    earliest = max(0.0, d - PROBE_DELAY, first - PROBE_DELAY if first is not None else 0.0)
    return Window(earliest, rounds.span(hc.interval),
                  f"background health check, {_terms(rounds, hc.interval)} (a chat completion, {effect.why}; "
                  f"fails after {d:g}s): the round under way may have passed it and lasts {rounds.how}; the next "
                  f"starts health_check_interval {hc.interval:g}s after it ends and writes its verdict when its "
                  f"slowest check ends, {r:.3g}s later; +{PROBE_DELAY:g}s for the proxy to answer the observer"
                  + (f"; no verdict before {first:.3g}s, when the first round to end after the fault began wrote "
                     f"its verdicts, less {PROBE_DELAY:g}s" if first is not None and first > PROBE_DELAY else ""),
                  LITELLM_MARGIN)


def first_verdict_after(facts: LoadFacts | None) -> float | None:
    """Seconds after the fault began when the first round that ended after it wrote its verdicts (the
    proxy's own stamps); None without them."""
    if facts is None or facts.rounds is None or facts.fault_start is None:
        return None
    start = facts.fault_start
    return min((written - start for _, written in facts.rounds if written >= start), default=None)


def _terms(rounds: Rounds, interval: float) -> str:
    r = f"{rounds.longest:.3g}s"
    return f"{r} + {interval:g}s" + (f" + {rounds.late:.3g}s" if rounds.late else "") + f" + {r}"


def passive_detection(scenario: Scenario, fault: Fault, facts: LoadFacts | None = None) -> Promise:
    """The cooldown. Retries change nothing here while a deployment of the group is healthy: every failed call, retried or not, goes through the router's
    failure callback (``deployment_callback_on_failure``) and counts toward allowed_fails (measured:
    scenarios/compare/passive-retries.yaml, docs/gateways.md). When every deployment fails, retries back off and
    no rate of failed calls bounds the cooldown: its window has no latest (the checks' window bounds detection)."""
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
    pool, index = split_target(fault.target)
    facts = facts or nominal_facts(scenario, pool)
    if facts.first_traffic is None or facts.rate <= 0:
        return Never(f"cooldowns need traffic and the load sends none to {pool!r}")
    n, size, d = od.consecutive_5xx or 1, scenario.pools[pool], effect.takes
    if retries is not None and retries.num_retries > 0 and (index is None or size == 1):
        # Router._time_to_sleep_before_retry: a request retries at once only while a deployment of its group is
        # healthy; when every one fails, it sleeps between tries (0.5s, 1s, 2s, ... with jitter), and a fallback
        # group's tries come after them: failed calls reach the deployments far slower than the load sends
        # requests (measured: 6.4s requests, one failed call per deployment in 3.7s; tests/own_config/).
        return Window(max(0.0, d - PROBE_DELAY), math.inf,
                      f"cooldown: allowed_fails {n - 1}, so the {n}th failed call ({effect.why}) on each deployment; "
                      f"with every deployment failing, LiteLLM sleeps between a request's {retries.num_retries} "
                      "retries, so no rate of failed calls bounds when", LITELLM_MARGIN)
    in_flight = facts.users / facts.rate if facts.users else 0.0
    return Window(max(0.0, d - PROBE_DELAY), d + in_flight + ARRIVAL_SLACK * n * size / facts.rate,
                  f"cooldown: allowed_fails {n - 1}, so the {n}th failed call ({effect.why}) on one of {size} "
                  f"deployments, picked at random at {facts.rate:.0f} requests/s ({facts.source}); "
                  f"+{PROBE_DELAY:g}s for the proxy to answer the observer", LITELLM_MARGIN)


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
    checked = active_detection(scenario, fault, facts)
    if isinstance(cooled, Window) and od is not None:
        windows.append(Window(0.0, od.base_ejection_time,
                              f"cooldown: the deployment is back cooldown_time {od.base_ejection_time:g}s after it "
                              "cooled down (no probe); it cooled down at most then before the fault ended"))
    if isinstance(checked, Window) and hc is not None:
        rounds = rounds_after(scenario, fault.at + fault.duration, facts)
        r = rounds.longest
        windows.append(Window(0.0, rounds.span(hc.interval),
                              f"background health check, {_terms(rounds, hc.interval)}: the round under way "
                              f"when it healed (lasting {rounds.how}; a check hung in it runs to its timeout) may "
                              f"still fail it; the next starts health_check_interval {hc.interval:g}s after that "
                              f"round ends and readmits it when its slowest check ends, {r:.3g}s later"))
        if od is not None:  # a failed check starts a cooldown when its round ends (the last: up to r after healing)
            windows.append(Window(0.0, r + od.base_ejection_time,
                                  f"a failed check's cooldown: set when the round under way when it healed ends "
                                  f"(up to {r:.3g}s), it lasts cooldown_time {od.base_ejection_time:g}s"))
    if not windows:
        for promise in (checked, cooled):
            if isinstance(promise, Unknown):
                return promise
        return Never("nothing takes the deployment out, so there is nothing to put back")
    # Back only when every mechanism that took it out lets it in: the latest of the latests.
    return Window(0.0, max(w.latest for w in windows),
                  " and ".join(w.how for w in windows) + f"; +{PROBE_DELAY:g}s for the proxy to answer the observer",
                  LITELLM_MARGIN)
