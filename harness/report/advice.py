"""'What to look at next': the causes, diagnostic steps and resolutions of 'no healthy upstream'
(Table 1 of the seed article, in our own words and applied to a chaosgate run), matched to
each injected fault and each failed expectation, and tied to what the run measured.

CAUSES is the catalogue. FAULT_CAUSES says which real-world causes each fault kind (or
'<kind>:<mode>' for the fake servers' fault modes) imitates;
EXPECTATION_CAUSES says where to look when an expectation kind fails. A new fault or
expectation kind gets one line in the matching dict (a test checks that every kind has one).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from harness.durations import format_duration
from harness.expectations import Expectation, Verdict
from harness.expectations.base import Unjudgeable
from harness.report.data import FaultOutcome, RunData
from harness.report.series import error_label
from harness.scenario import Gateway


@dataclass(frozen=True)
class Cause:
    """One row of the catalogue: a cause, how to confirm it, how to fix it."""

    category: str
    problem: str
    diagnose: tuple[str, ...]
    resolve: tuple[str, ...]


CAUSES: dict[str, Cause] = {
    # -- Network --------------------------------------------------------------------------
    "dns": Cause(
        "Network", "The gateway cannot resolve the upstream's name",
        ("From the gateway's host, resolve the name the gateway uses (dig or getent hosts) and compare "
         "with reaching the replica by IP address.",
         "Check which resolver the gateway is configured with, and that it answers."),
        ("Fix the records or the resolver configuration; give the gateway more than one resolver.",
         "Decide what the gateway does while resolution fails (keep the last known addresses).")),
    "firewall": Cause(
        "Network", "Connections to the replica are blocked or refused",
        ("From the gateway's host, open a TCP connection to the replica's address and port (nc -vz); "
         "refused means nothing listens or a rule rejects it, silence means a rule drops it.",
         "Read the firewall or security-group rules on both ends for that port."),
        ("Allow the port from the gateway to the replica (outbound on one side, inbound on the other).",
         "Retry connect failures on another replica so one blocked host does not reach clients.")),
    "routing": Cause(
        "Network", "Packets to the replica are lost or go the wrong way",
        ("Trace the path from the gateway's host to the replica (traceroute, mtr) and look for the hop "
         "where it stops.",
         "Compare the routing tables on both hosts (ip route)."),
        ("Correct the routes so the gateway's network reaches the replica's.",
         "Keep health-check timeouts short, so a silent path is detected in seconds, not minutes.")),
    "tcp": Cause(
        "Network", "Connections are reset or torn down during the handshake or the request",
        ("Capture the traffic on both ends (tcpdump) during a failing request and find who sends the RST.",
         "Check the replica's accept backlog, the gateway's free ephemeral ports and connection limits."),
        ("Fix the side that resets; meanwhile let the gateway retry 'reset' and 'connect-failure' on "
         "another replica.",
         "Enable passive health checks (outlier detection) so a resetting host is ejected by real traffic.")),
    "mtu": Cause(
        "Network", "Large responses break (MTU mismatch, fragmentation, cut connections)",
        ("Test the path with large, unfragmentable packets (ping -M do -s SIZE) and see at which size it fails.",
         "Check whether failures follow response size: streamed and long answers fail, short ones pass."),
        ("Make the MTU consistent along the path.",
         "Retry failed idempotent requests and make clients tolerate partial streams.")),
    # -- The upstream service -----------------------------------------------------------------
    "crashed": Cause(
        "Upstream service", "The replica crashed or is not running",
        ("Check that the replica's process is alive and listening on its port (ps, ss -ltnp).",
         "Read the replica's own log for the crash or a failed start (chaosgate keeps it in logs/)."),
        ("Restart it and fix the cause of the crash.",
         "Run replicas under a supervisor or liveness probe that restarts them, and keep enough replicas "
         "that losing one is routine.")),
    "resources": Cause(
        "Upstream service", "The replica is starved (CPU or GPU, memory, file descriptors, connection pools)",
        ("Watch the replica's CPU, memory and open files while the failure happens (top, free, lsof).",
         "Look in its log for 'out of memory', 'too many open files' or exhausted pools.",
         "Compare latency by replica: one slow replica points at that host, all slow at the load."),
        ("Add replicas or capacity, raise the limits, or scale on load.",
         "Bound each try with a per-try timeout and retry elsewhere; let outlier detection eject slow hosts.")),
    "app_error": Cause(
        "Upstream service", "The replica runs but fails requests (a bug, a deadlock, a broken dependency)",
        ("Call the replica directly, bypassing the gateway: its health endpoint and a real request "
         "(a chat completion), and compare the two.",
         "Read its log for exceptions and timeouts."),
        ("Fix the application error.",
         "Make the health endpoint exercise what real requests need (a deep check), so the gateway sees "
         "what clients see.")),
    # -- The gateway's configuration ------------------------------------------------------------
    "upstream_definition": Cause(
        "Gateway configuration", "The gateway points at the wrong address or port",
        ("Compare the endpoints of the cluster in the gateway configuration below with where the "
         "replicas really listen.",),
        ("Correct the address or port in the gateway configuration.",)),
    "health_check": Cause(
        "Gateway configuration", "The health check does not match the failure (too slow, too strict, wrong path or status)",
        ("Compare the measured detection and recovery times with what the settings allow: about "
         "unhealthy_threshold checks, interval apart, each taking up to timeout when the replica is silent.",
         "Call the health path on the replica yourself and check the status the gateway expects.",
         "For Envoy, check no_traffic_interval: until a cluster has carried traffic, checks run that far apart."),
        ("Tune interval, timeout and thresholds to the detection time you need.",
         "Add passive health checks (outlier detection) for failures the health path does not see.")),
    "tls": Cause(
        "Gateway configuration", "The TLS handshake to the replica fails (expired, untrusted or wrong-host certificate)",
        ("Connect the way the gateway does (openssl s_client -connect HOST:PORT -servername NAME) and read "
         "the certificate's dates, names and chain.",
         "Look for TLS errors in the gateway's log."),
        ("Renew the certificate, or add its CA to the gateway's trust store; make the names match.",)),
    "load_balancing": Cause(
        "Gateway configuration", "Load balancing or routing keeps sending traffic to a broken replica",
        ("Find which replica each failed request went to (the x-chaosgate-upstream header, in the journal).",
         "Check the panic threshold: below it Envoy ignores health and spreads traffic over every replica.",
         "Check the route's retry policy and timeouts: without retries, every request to a broken replica fails."),
        ("Set the panic threshold to 0 when clients should get a fast '503 no healthy upstream' "
         "rather than be sent to dead replicas.",
         "Retry on another replica (retry_on connect-failure, reset, gateway-error) with a per-try timeout.")),
    # -- Protocol and API compatibility ---------------------------------------------------------
    "protocol": Cause(
        "Protocol and API", "The gateway and the replica speak different protocols (HTTP/1.1 or HTTP/2, REST or gRPC)",
        ("Send a request to the replica with curl -v and compare the protocol with the gateway's cluster settings.",),
        ("Configure both sides for the same protocol.",)),
    "mcp": Cause(
        "Protocol and API", "Model Context Protocol mismatch (schema, version or session handling)",
        ("Compare the initialize and tools/list exchange of the gateway and the server: protocol version, "
         "session id header, tool schemas.",),
        ("Pin the protocol version on both sides and validate tool schemas before serving them.",)),
    "serialization": Cause(
        "Protocol and API", "Payloads are not what the other side expects (JSON shape, content type, framing)",
        ("Send the same request to the replica with curl -v and check Content-Type and the body against the API.",
         "For streams, check that every server-sent event arrives whole."),
        ("Agree on the format (an API contract, schema validation) and make parsers tolerate chunked data.",)),
}

FAULT_CAUSES: dict[str, tuple[str, ...]] = {
    "reset_peer": ("crashed", "tcp"),
    "down": ("crashed", "firewall", "upstream_definition"),
    "timeout": ("routing", "firewall", "resources"),
    "latency": ("resources", "health_check"),
    "bandwidth": ("resources", "routing"),
    "slow_close": ("tcp", "app_error"),
    "slicer": ("mtu", "serialization"),
    "limit_data": ("mtu", "tcp"),
    # Process faults (the supervisor restarts the replica, as an orchestrator would).
    "process_kill": ("crashed", "health_check"),
    "process_freeze": ("resources", "health_check"),
    "process_restart": ("crashed", "upstream_definition"),
    "oom": ("resources", "crashed"),
    "port_change": ("upstream_definition", "firewall"),
    # Fault modes of the fake servers: '<kind>:<mode>' is more precise than the kind alone.
    "llm_fault": ("app_error", "resources"),
    "llm_fault:error_status": ("app_error", "resources"),
    "llm_fault:slow_ttft": ("resources", "health_check"),
    "llm_fault:slow_tokens": ("resources", "health_check"),
    "llm_fault:hang_before_headers": ("resources", "app_error"),
    "llm_fault:stall_stream": ("resources", "serialization"),
    "llm_fault:truncate_stream": ("serialization", "tcp"),
    "llm_fault:malformed_sse": ("serialization", "protocol"),
    "llm_fault:midstream_error": ("app_error", "serialization"),
    "llm_fault:wrong_content_type": ("serialization", "protocol"),
    "llm_fault:health_fail": ("health_check", "app_error"),
    "llm_fault:inference_fail": ("app_error", "health_check"),
    "llm_fault:memory_growth": ("resources", "crashed"),
    "llm_fault:cpu_burn": ("resources", "health_check"),
    "mcp_fault": ("mcp", "serialization"),
    "mcp_fault:wrong_content_type": ("serialization", "mcp"),
    "mcp_fault:session_expiry": ("mcp", "load_balancing"),
    "cert": ("tls", "health_check"),
    "dns": ("dns", "upstream_definition"),
    "dns:wrong_address": ("dns", "upstream_definition"),
    "dns:flip": ("dns", "load_balancing"),
}

EXPECTATION_CAUSES: dict[str, tuple[str, ...]] = {
    "upstream_unhealthy": ("health_check", "app_error"),
    "upstream_healthy": ("health_check", "crashed"),
    "no_traffic_to": ("load_balancing", "health_check"),
    "traffic_to": ("load_balancing", "dns"),
    "error_rate": ("load_balancing", "health_check"),
    "latency": ("resources", "load_balancing"),
    "all_down_response": ("load_balancing", "health_check"),
    "max_request_time": ("resources", "health_check"),
    # The diagnosis named another cause than the injected one: where the layers disagree.
    "diagnosis": ("health_check", "upstream_definition"),
}
# Errors before any fault mean the stack itself is wrong, not the gateway's reaction.
BASELINE_CAUSES = ("upstream_definition", "protocol", "serialization")


@dataclass(frozen=True)
class Advice:
    """One entry of 'what to look at next'."""

    title: str
    failed: bool                    # a failed expectation (True) or an injected fault (False)
    measured: tuple[str, ...]       # what this run measured that bears on it
    causes: tuple[Cause, ...]


def advise(run: RunData) -> list[Advice]:
    """Failed expectations first, then every injected fault."""
    judgement = run.judgement
    items = [_for_verdict(run, e, v) for e, v in zip(judgement.scenario.expect, judgement.verdicts, strict=True)
             if not v.passed]
    items += [_for_fault(run, f) for f in run.faults]
    return items


def _causes(keys: tuple[str, ...]) -> tuple[Cause, ...]:
    return tuple(CAUSES[k] for k in keys)


def _for_verdict(run: RunData, expectation: Expectation, verdict: Verdict) -> Advice:
    keys = EXPECTATION_CAUSES.get(verdict.kind, ("health_check",))
    if verdict.params.get("window") == "baseline":
        keys = BASELINE_CAUSES
    measured = [f"Measured {verdict.measured} against a bound of {verdict.bound}: {verdict.detail}."]
    window = getattr(expectation, "window", None)
    if window is not None:
        try:
            start, end = expectation.window_bounds(window, run.timeline, getattr(expectation, "target", None))
        except Unjudgeable:
            pass
        else:
            measured.append(_failures_between(run, start, end))
    if not run.timeline.complete:
        measured.append(f"The run is incomplete ({run.outcome_words}), so this may be for lack of events.")
    return Advice(f"{verdict.kind} failed: {verdict.description}", True, tuple(measured), _causes(keys))


def _for_fault(run: RunData, fault: FaultOutcome) -> Advice:
    w = fault.window
    params = ", ".join(f"{k} {v}" for k, v in fault.params.items())
    measured = [f"Injected {w.kind} on {', '.join(w.replicas)} from {w.start:.2f}s to {w.end:.2f}s "
                f"({w.end - w.start:.2f}s){f'; {params}' if params else ''}."]
    if fault.detected_after is not None:
        measured.append(f"The gateway marked {', '.join(w.replicas)} unhealthy {fault.detected_after:.3f}s after it began.")
    else:
        measured.append(f"The gateway never marked {', '.join(w.replicas)} unhealthy while it lasted.")
    if fault.recovered_after is not None:
        measured.append(f"It saw them healthy again {fault.recovered_after:.3f}s after it ended.")
    elif fault.detected_after is not None:
        measured.append("It still saw them unhealthy when the run ended.")
    measured.append(_failures_between(run, w.start, w.end))
    keys = FAULT_CAUSES.get(f"{w.kind}:{fault.params.get('mode')}") or FAULT_CAUSES.get(w.kind)
    if keys is None:
        measured.append(f"The catalogue has no entry for fault kind {w.kind!r} yet; the closest general causes follow.")
        keys = ("crashed", "health_check")
    return Advice(f"Injected {w.label}: what it imitates in production", False, tuple(measured), _causes(keys))


def _failures_between(run: RunData, start: float, end: float) -> str:
    """How the requests that started in [start, end) failed, and where the gateway sent them."""
    requests = run.timeline.requests_between(start, end)
    failed = [r for r in requests if not r.ok]
    line = f"Between {start:.2f}s and {end:.2f}s, {len(failed)} of {len(requests)} requests failed"
    if failed:
        kinds = Counter(map(error_label, failed)).most_common(4)
        line += ": " + ", ".join(f"{n} × {label}" for label, n in kinds)
        where = Counter(name for r in failed if (name := r.routed_to or r.replica))
        if where:
            line += "; the gateway had sent " + ", ".join(f"{n} to {name}" for name, n in sorted(where.items()))
        if nowhere := len(failed) - sum(where.values()):
            line += f"; {nowhere} never reached a replica"
    return line + "."


def gateway_settings(gateway: Gateway) -> list[str]:
    """The gateway's resilience settings in a few readable lines."""
    lines = []
    hc = gateway.health_check
    if hc is None:
        lines.append("no active health check")
    else:
        lines.append(f"health check {hc.path} every {format_duration(hc.interval)}, timeout "
                     f"{format_duration(hc.timeout)}, unhealthy after {hc.unhealthy_threshold} failed and healthy "
                     f"after {hc.healthy_threshold} passed checks, no_traffic_interval {format_duration(hc.no_traffic_interval)}")
    od = gateway.outlier_detection
    if od is None:
        lines.append("no outlier detection")
    else:
        lines.append(f"outlier detection: consecutive_5xx {od.consecutive_5xx}, consecutive_gateway_failure "
                     f"{od.consecutive_gateway_failure}, base_ejection_time {format_duration(od.base_ejection_time)}, "
                     f"max_ejection_percent {od.max_ejection_percent}%")
    lines.append(f"panic threshold {gateway.panic_threshold:g}%")
    retries = gateway.retries
    if retries is None:
        lines.append("no retries")
    else:
        per_try = f", per-try timeout {format_duration(retries.per_try_timeout)}" if retries.per_try_timeout else ""
        lines.append(f"{retries.num_retries} retries on {', '.join(retries.retry_on)}{per_try}")
    return lines
