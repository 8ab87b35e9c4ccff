"""nginx OSS 1.22: when its configuration lets it detect a fault and readmit the replica.

nginx OSS has no active checks (docs/gateway-health.md, nginx OSS). A server is skipped once
``max_fails`` requests to it failed within ``fail_timeout`` (failures are the
``proxy_next_upstream`` classes: errors and timeouts always, a replica's ``http_5xx`` answer only when
nginx retries it, that is with retries and the class listed: every retried try counts), and
tried again by the first request picked for it once ``fail_timeout`` has passed, at one-second
resolution (``ngx_time()``); a success then readmits it. The numbers come from the adapter's own
rendering (``NginxGateway.passive()``, ``next_upstream()``). With k servers round robin at r requests per second:

    detect  in [d,  d + in-flight + 2·F·k/r]        (0 with a single server: never)
    recover in [0,  fail_timeout + 1s + in-flight + 2·k/r + the request's own time]

F is max_fails, or W·(max_fails − 1) + 1 with W worker processes and no shared ``zone``: each
worker then counts on its own, so the first disabling comes at the max_fails-th failure in one
worker, which at worst (pigeonhole) is the W·(max_fails − 1) + 1-th failure overall. That first
worker's ``[warn]`` line is what the adapter's view shows (harness/gateways/nginx.py). Readmission
needs no change: every worker's last failure comes before the fault ends, and the view is healthy
again at the first answer from the server, whichever worker sent the request.

A user's own nginx.conf may mark servers ``backup`` (harness/own_config/nginx.py, ``Block.backup``):
nginx sends a backup requests only while every primary server is unavailable. So k counts the
primaries for a fault on a primary; a fault on a backup that leaves a primary serving is never
detected; a fault on every server is, k being all of them (each request counts at least one failure
on a server still in service, so all are out after F·k failed requests). Readmitting a backup is not
promised: once a primary is back nginx may never try the backup again.
"""

from __future__ import annotations

from harness.faults import Fault
from harness.gateways.nginx import NO_TIMEOUT, NginxGateway
from harness.own_config import pool_block
from harness.promise.effects import RESTARTING_KINDS, request_effect
from harness.promise.envoy import ARRIVAL_SLACK
from harness.promise.load import GATEWAY_OVERHEAD_S, LoadFacts, nominal_facts
from harness.promise.window import Never, Promise, Unknown, Window
from harness.scenario import Scenario
from harness.targets import split_target

# Covers: nginx compares fail_timeout with ngx_time(), whole seconds. Not measured: nginx's source.
CLOCK_RESOLUTION = 1.0


def _passive(scenario: Scenario) -> tuple[int, float, list[str]]:
    return NginxGateway(scenario.gateway, 0, 0, scenario.load_pool).passive()


def _try_limit(scenario: Scenario) -> float:
    gateway = scenario.gateway
    if gateway.retries is not None and gateway.retries.per_try_timeout:
        return gateway.retries.per_try_timeout
    return gateway.request_timeout if gateway.request_timeout > 0 else NO_TIMEOUT


def failures_to_detect(scenario: Scenario, max_fails: int) -> tuple[int, str]:
    """How many failed requests to one server, over all workers, nginx may need before it first disables
    it, and why: max_fails, or W·(max_fails − 1) + 1 when W workers each count on their own (no shared zone)."""
    options = scenario.gateway.nginx
    workers = options.worker_processes
    if workers == 1 or options.shared_zone or max_fails <= 1:
        return max_fails, f"max_fails {max_fails} failed requests"
    needed = workers * (max_fails - 1) + 1
    return needed, (f"max_fails {max_fails} failed requests in one of {workers} workers that count on their own "
                    f"(no shared zone): up to {needed} over all")


def _status_uncounted(scenario: Scenario, status: int | None) -> str | None:
    """Why nginx does not count a replica's answer with this status toward max_fails (None: it does).

    nginx counts a 5xx answer only when it passes the request to the next server
    (ngx_http_upstream_test_next(): the http_<status> class in proxy_next_upstream and a try left; the
    server of a try it retries is freed as failed). Every retried try counts, so retries hide nothing
    from max_fails; a request's last try, which has no try left, is answered to the client uncounted."""
    next_upstream, tries = NginxGateway(scenario.gateway, 0, 0, scenario.load_pool).next_upstream()
    if tries < 2:
        return ("and without retries nginx hands a replica's 5xx answer to the client uncounted (it counts "
                "one only when it retries it)")
    if f"http_{status}" not in next_upstream:
        return (f"and http_{status} is not a failure nginx retries and counts "
                f"(proxy_next_upstream {' '.join(next_upstream)})")
    return None


def _backups(scenario: Scenario, fault: Fault) -> tuple[int, ...]:
    """The backup servers among the fault's replicas (a user's own nginx.conf, ``server ... backup``)."""
    pool, index = split_target(fault.target)
    block = pool_block(scenario, pool) if scenario.gateway.config is not None else None
    if block is None:
        return ()
    return tuple(i for i in block.backup if index is None or i == index)


def _rotation(scenario: Scenario, fault: Fault) -> int | Never:
    """How many servers take turns with the fault's: its pool's primaries when it has backup servers (a backup
    gets requests only while every primary is unavailable), all of them when the fault hits every server."""
    pool, index = split_target(fault.target)
    size = scenario.pools[pool]
    block = pool_block(scenario, pool) if scenario.gateway.config is not None else None
    if block is None or not block.backup:
        return size
    primaries = size - len(block.backup)
    if index is None:
        return size  # every server fails: the primaries' failures, then the backups', each request counting one
    if index in block.backup:
        return Never(f"{pool}[{index}] is a backup server ({block.endpoints[index].source}): nginx sends it "
                     f"requests only while every primary server is unavailable, and the fault leaves "
                     f"{primaries} primary server(s) serving")
    return primaries


def _counted(scenario: Scenario, fault: Fault, facts: LoadFacts | None) -> tuple[Window, LoadFacts] | Promise:
    """The window of the max_fails-th counted failure, with the load facts used."""
    max_fails, fail_timeout, _ = _passive(scenario)
    pool, _ = split_target(fault.target)
    size = scenario.pools[pool]
    if size == 1:
        return Never(f"{pool!r} has a single server: nginx ignores max_fails and fail_timeout in a group of one "
                     "and never marks it down")
    if max_fails == 0:
        return Never("max_fails 0 turns nginx's failure accounting off")
    facts = facts or nominal_facts(scenario, pool)
    if facts.first_traffic is None or facts.rate <= 0:
        return Never(f"nginx notices failures only on requests, and the load sends none to {pool!r}")
    rotation = _rotation(scenario, fault)
    if isinstance(rotation, Never):
        return rotation
    size = rotation
    effect = request_effect(fault, _try_limit(scenario))
    if effect.kind == "unknown":
        return Unknown(effect.why)
    if effect.kind in ("ok", "hangs"):
        return Never(f"no request fails: {effect.why}")
    if effect.kind == "status" and (why := _status_uncounted(scenario, effect.status)) is not None:
        return Never(f"{effect.why}, {why}")
    d = effect.takes
    rate = facts.users / (facts.users / facts.rate + d / size) if facts.users else facts.rate
    in_flight = facts.users / rate if facts.users else 0.0
    needed, counted = failures_to_detect(scenario, max_fails)
    # Covers (commit 342c339): a request in flight when the fault began fails with it too; it started up
    # to one request time before the fault (users / the rate before it, a fact of the run's load), so it
    # can fail that much earlier than d. Measured: a blackhole with a 2s read timeout disabled after 1.969s.
    before = facts.users / facts.rate if facts.users else 0.0
    window = Window(max(0.0, d - before), d + in_flight + ARRIVAL_SLACK * needed * size / rate,
                    f"passive: {counted} ({effect.why}) on one of {size} servers at "
                    f"{rate:.0f} requests/s ({facts.source}), within fail_timeout {fail_timeout:g}s; "
                    f"the requests in flight when it began fail up to {before:.3g}s earlier")
    return window, facts


def detection_window(scenario: Scenario, fault: Fault, facts: LoadFacts | None = None) -> Promise:
    counted = _counted(scenario, fault, facts)
    return counted[0] if isinstance(counted, tuple) else counted


def recovery_window(scenario: Scenario, fault: Fault, facts: LoadFacts | None = None,
                    after: str = "fault_end") -> Promise:
    if fault.kind in RESTARTING_KINDS and after == "fault_end":
        return Unknown("the replica comes back when the supervisor's restart is ready, not when the fault "
                       "ends; use after: restart_ready")
    counted = _counted(scenario, fault, facts)
    if not isinstance(counted, tuple):
        return counted if isinstance(counted, Unknown) else \
            Never(f"nothing marks the server down, so there is nothing to readmit: {getattr(counted, 'why', '')}")
    if backups := _backups(scenario, fault):
        return Unknown(f"{fault.target} includes backup server(s) {', '.join(f'[{i}]' for i in backups)}: nginx "
                       "sends a backup requests only while every primary server is unavailable, so once a primary is "
                       "readmitted it may never try the backup again, and nothing shows it readmitted")
    _, facts = counted
    _, fail_timeout, _ = _passive(scenario)
    rotation = _rotation(scenario, fault)
    size = rotation if isinstance(rotation, int) else scenario.pools[split_target(fault.target)[0]]
    upstream = next(u for u in scenario.upstreams if u.name == split_target(fault.target)[0])
    service = upstream.ttft + scenario.load.max_tokens / upstream.tokens_per_s + GATEWAY_OVERHEAD_S
    in_flight = facts.users / facts.rate if facts.users else 0.0
    latest = fail_timeout + CLOCK_RESOLUTION + in_flight + ARRIVAL_SLACK * size / facts.rate + service
    return Window(0.0, latest,
                  f"passive: the server is skipped for fail_timeout {fail_timeout:g}s after its last failure "
                  f"(+{CLOCK_RESOLUTION:g}s: nginx counts whole seconds), then the next request picked for it "
                  f"(one of {size} at {facts.rate:.0f}/s) succeeds and readmits it")
