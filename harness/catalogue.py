"""The one catalogue of "no healthy upstream" causes, shared by ``chaosgate diagnose`` (which names
a cause for an unhealthy host), the ``diagnosis`` expectation (which checks the name) and the
report's "what to look at next" (which lists the causes a fault or a failed expectation points to).

Two levels, in our own words after Table 1 of the article chaosgate grew from (docs/diagnose.md):

* ``ROWS``: the rows of Table 1 (category, problem), each with how to confirm and how to fix it.
* ``CAUSES``: the causes, one name each. A cause belongs to one or more rows and says the next
  step. ``diagnose`` names only the causes with ``diagnosed=True``; the others are causes no probe
  from the gateway's side can name (an MTU mismatch, starved resources, the health check's own
  settings, load balancing, a wrong upstream definition) and appear only as advice.

``FAULT_CAUSES`` maps each fault kind (or ``'<kind>:<mode>'``) to the causes it imitates, the one
``diagnose`` names for it first (docs/diagnose.md's accuracy table); ``EXPECTATION_CAUSES`` says
where to look when an expectation kind fails. A test checks every fault and expectation kind has
an entry and that diagnose's accuracy cases agree with ``FAULT_CAUSES``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One row of Table 1: a category and a specific problem, how to confirm it, how to fix it."""

    category: str
    table1: str                  # the row as Table 1 names it, e.g. "Network / DNS Resolution Failure"
    problem: str                 # the same in plain words
    diagnose: tuple[str, ...]
    resolve: tuple[str, ...]


ROWS: dict[str, Row] = {
    # -- Network --------------------------------------------------------------------------
    "dns": Row(
        "Network", "Network / DNS Resolution Failure", "The gateway cannot resolve the upstream's name",
        ("From the gateway's host, resolve the name the gateway uses (dig or getent hosts) and compare "
         "with reaching the replica by IP address.",
         "Check which resolver the gateway is configured with, and that it answers."),
        ("Fix the records or the resolver configuration; give the gateway more than one resolver.",
         "Decide what the gateway does while resolution fails (keep the last known addresses).")),
    "firewall": Row(
        "Network", "Network / Firewall Block", "Connections to the replica are blocked or refused",
        ("From the gateway's host, open a TCP connection to the replica's address and port (nc -vz); "
         "refused means nothing listens or a rule rejects it, silence means a rule drops it.",
         "Read the firewall or security-group rules on both ends for that port."),
        ("Allow the port from the gateway to the replica (outbound on one side, inbound on the other).",
         "Retry connect failures on another replica so one blocked host does not reach clients.")),
    "routing": Row(
        "Network", "Network / Routing Problem", "Packets to the replica are lost or go the wrong way",
        ("Trace the path from the gateway's host to the replica (traceroute, mtr) and look for the hop "
         "where it stops.",
         "Compare the routing tables on both hosts (ip route)."),
        ("Correct the routes so the gateway's network reaches the replica's.",
         "Keep health-check timeouts short, so a silent path is detected in seconds, not minutes.")),
    "tcp": Row(
        "Network", "Network / TCP Handshake Failure",
        "Connections are reset or torn down during the handshake or the request",
        ("Capture the traffic on both ends (tcpdump) during a failing request and find who sends the RST.",
         "Check the replica's accept backlog, the gateway's free ephemeral ports and connection limits."),
        ("Fix the side that resets; meanwhile let the gateway retry 'reset' and 'connect-failure' on "
         "another replica.",
         "Enable passive health checks (outlier detection) so a resetting host is ejected by real traffic.")),
    "mtu": Row(
        "Network", "Network / MTU Mismatch", "Large responses break (MTU mismatch, fragmentation, cut connections)",
        ("Test the path with large, unfragmentable packets (ping -M do -s SIZE) and see at which size it fails.",
         "Check whether failures follow response size: streamed and long answers fail, short ones pass."),
        ("Make the MTU consistent along the path.",
         "Retry failed idempotent requests and make clients tolerate partial streams.")),
    # -- The upstream service -----------------------------------------------------------------
    "crashed": Row(
        "Upstream service", "Upstream Service / Service Crashed or Not Running",
        "The replica crashed or is not running",
        ("Check that the replica's process is alive and listening on its port (ps, ss -ltnp).",
         "Read the replica's own log for the crash or a failed start (chaosgate keeps it in logs/)."),
        ("Restart it and fix the cause of the crash.",
         "Run replicas under a supervisor or liveness probe that restarts them, and keep enough replicas "
         "that losing one is routine.")),
    "resources": Row(
        "Upstream service", "Upstream Service / Resource Exhaustion",
        "The replica is starved (CPU or GPU, memory, file descriptors, connection pools)",
        ("Watch the replica's CPU, memory and open files while the failure happens (top, free, lsof).",
         "Look in its log for 'out of memory', 'too many open files' or exhausted pools.",
         "Compare latency by replica: one slow replica points at that host, all slow at the load."),
        ("Add replicas or capacity, raise the limits, or scale on load.",
         "Bound each try with a per-try timeout and retry elsewhere; let outlier detection eject slow hosts.")),
    "app_error": Row(
        "Upstream service", "Upstream Service / Application-Level Error",
        "The replica runs but fails requests (a bug, a deadlock, a broken dependency)",
        ("Call the replica directly, bypassing the gateway: its health endpoint and a real request "
         "(a chat completion), and compare the two.",
         "Read its log for exceptions and timeouts."),
        ("Fix the application error.",
         "Make the health endpoint exercise what real requests need (a deep check), so the gateway sees "
         "what clients see.")),
    # -- The gateway's configuration ------------------------------------------------------------
    "upstream_definition": Row(
        "Gateway configuration", "Gateway Config / Incorrect Upstream Definition",
        "The gateway points at the wrong address or port",
        ("Compare the endpoints of the cluster in the gateway configuration with where the "
         "replicas really listen (ss -ltnp on the replica's host).",),
        ("Correct the address or port in the gateway configuration.",)),
    "health_check": Row(
        "Gateway configuration", "Gateway Config / Misconfigured Health Check",
        "The health check does not match the failure (too slow, too strict, wrong path or status)",
        ("Compare the measured detection and recovery times with what the settings allow: about "
         "unhealthy_threshold checks, interval apart, each taking up to timeout when the replica is silent.",
         "Call the health path on the replica yourself and check the status the gateway expects.",
         "For Envoy, check no_traffic_interval: until a cluster has carried traffic, checks run that far apart."),
        ("Tune interval, timeout and thresholds to the detection time you need.",
         "Add passive health checks (outlier detection) for failures the health path does not see.")),
    "tls": Row(
        "Gateway configuration", "Gateway Config / SSL/TLS Handshake Failure",
        "The TLS handshake to the replica fails (expired, untrusted or wrong-host certificate)",
        ("Connect the way the gateway does (openssl s_client -connect HOST:PORT -servername NAME) and read "
         "the certificate's dates, names and chain.",
         "Look for TLS errors in the gateway's log."),
        ("Renew the certificate, or add its CA to the gateway's trust store; make the names match.",)),
    "load_balancing": Row(
        "Gateway configuration", "Gateway Config / Load Balancing and Routing Logic",
        "Load balancing or routing keeps sending traffic to a broken replica",
        ("Find which replica each failed request went to (the x-chaosgate-upstream header, in the journal).",
         "Check the panic threshold: below it Envoy ignores health and spreads traffic over every replica.",
         "Check the route's retry policy and timeouts: without retries, every request to a broken replica fails."),
        ("Set the panic threshold to 0 when clients should get a fast '503 no healthy upstream' "
         "rather than be sent to dead replicas.",
         "Retry on another replica (retry_on connect-failure, reset, gateway-error) with a per-try timeout.")),
    # -- Protocol and API compatibility ---------------------------------------------------------
    "protocol": Row(
        "Protocol and API", "Protocol/API Compatibility / Protocol Mismatch (HTTP/1.1 vs HTTP/2, REST vs gRPC)",
        "The gateway and the replica speak different protocols (HTTP/1.1 or HTTP/2, REST or gRPC)",
        ("Send a request to the replica with curl -v and compare the protocol with the gateway's cluster settings.",),
        ("Configure both sides for the same protocol.",)),
    "mcp": Row(
        "Protocol and API", "Protocol/API Compatibility / Model Context Protocol (MCP) Mismatch",
        "Model Context Protocol mismatch (schema, version or session handling)",
        ("Compare the initialize and tools/list exchange of the gateway and the server: protocol version, "
         "session id header, tool schemas.",),
        ("Pin the protocol version on both sides and validate tool schemas before serving them.",)),
    "serialization": Row(
        "Protocol and API", "Protocol/API Compatibility / Data Serialization Issues",
        "Payloads are not what the other side expects (JSON shape, content type, framing)",
        ("Send the same request to the replica with curl -v and check Content-Type and the body against the API.",
         "For streams, check that every server-sent event arrives whole."),
        ("Agree on the format (an API contract, schema validation) and make parsers tolerate chunked data.",)),
}


@dataclass(frozen=True)
class Cause:
    """One named cause: what it is, its Table 1 rows, the next step, and whether diagnose can name it."""

    name: str
    problem: str                 # one line in plain words
    rows: tuple[str, ...]        # keys of ROWS, the most likely first
    next_step: str
    diagnosed: bool = True       # diagnose can name it (and a diagnosis expectation can expect it)

    @property
    def row(self) -> str:
        """The Table 1 rows it belongs to, as Table 1 names them."""
        return "; ".join(ROWS[key].table1 for key in self.rows) or "(not probed)"

    @property
    def category(self) -> str:
        return " · ".join(dict.fromkeys(ROWS[key].category for key in self.rows))

    @property
    def diagnose(self) -> tuple[str, ...]:
        """How to confirm it: the next step, then its rows' steps."""
        return (self.next_step[:1].upper() + self.next_step[1:] + ".",
                *dict.fromkeys(step for key in self.rows for step in ROWS[key].diagnose))

    @property
    def resolve(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(step for key in self.rows for step in ROWS[key].resolve))


_CAUSES = [
    # -- named by diagnose (docs/diagnose.md: the layers and the causes each names)
    Cause("dns_failure", "The gateway cannot resolve the upstream's name", ("dns",),
          "dig the name against the gateway's resolver; fix the A/AAAA record or the resolver configuration"),
    Cause("connection_refused", "Nothing accepts connections at the replica's address (connection refused)",
          ("crashed", "firewall", "upstream_definition"),
          "check the process is running and listening on that port (ps, ss -ltnp); check the port in the gateway config"),
    Cause("connection_timeout", "Connections to the replica are never answered (dropped on the way)",
          ("firewall", "routing"),
          "nc -vz from the gateway; check firewall rules (iptables, security groups) and routes (ip route)"),
    Cause("connection_closed", "The replica's port accepts connections and closes them at once (nothing behind a proxy)",
          ("crashed", "upstream_definition"),
          "the port accepts and closes at once: check the process behind it (ps, logs, OOM kills in dmesg); restart it"),
    Cause("connection_reset", "Connections to the replica are reset", ("tcp", "crashed"),
          "the peer resets connections: check the upstream's logs and any middlebox between gateway and upstream"),
    Cause("no_response", "Connections are accepted but nothing answers (hung process, silent drop)",
          ("resources", "app_error", "firewall"),
          "the connection is accepted but nothing answers: check the process state (ps: T/D), CPU, memory, deadlocks"),
    Cause("tls_expired", "The replica's certificate has expired", ("tls",),
          "renew the upstream's certificate (openssl s_client -connect ... to confirm the dates)"),
    Cause("tls_not_yet_valid", "The replica's certificate is not valid yet", ("tls",),
          "check the upstream's certificate dates and the clocks of both hosts"),
    Cause("tls_hostname", "The replica's certificate does not name the host the gateway expects", ("tls",),
          "the certificate does not name the host the gateway expects: reissue it with that name, or fix the SNI/SAN setting"),
    Cause("tls_untrusted", "The replica's certificate is signed by a CA the gateway does not trust", ("tls",),
          "the certificate's issuer is not in the gateway's trust store: add the CA or serve the full chain"),
    Cause("tls_handshake", "The TLS handshake to the replica fails", ("tls", "protocol"),
          "openssl s_client against the upstream; align TLS versions, ciphers and ALPN"),
    Cause("health_check_failing", "The replica itself answers its health check with an error", ("app_error", "health_check"),
          "the upstream itself reports unhealthy on the health path: read its logs and the body of the health answer"),
    Cause("health_check_timeout", "The health answer comes, but after the check's timeout", ("health_check", "resources"),
          "the health answer comes, but later than the check's timeout: find why it is slow, or raise the timeout"),
    Cause("health_check_misconfigured", "The health check asks for something the replica does not serve", ("health_check",),
          "the check asks for something the upstream does not serve (path, method or expected status): fix the check"),
    Cause("wrong_protocol", "The gateway and the replica speak different protocols", ("protocol",),
          "configure gateway and upstream for the same protocol (curl -v --http2-prior-knowledge / --http1.1)"),
    Cause("wrong_content_type", "The replica answers with the wrong Content-Type", ("serialization", "protocol"),
          "the upstream answers with the wrong Content-Type (curl -v): check what really serves that port"),
    Cause("mcp_protocol_version", "The MCP server does not speak the client's protocol version", ("mcp",),
          "align the MCP protocol versions of client and server"),
    Cause("mcp_schema_mismatch", "The MCP server's messages do not follow the MCP schema", ("mcp", "serialization"),
          "inspect the initialize / tools/list / tools/call payloads against the MCP schema; fix the server"),
    Cause("mcp_session", "MCP sessions expire or are unknown to the server", ("mcp", "load_balancing"),
          "sessions expire or are unknown: check session affinity in the gateway and the server's session store"),
    Cause("inference_failing", "Inference fails while the health check may pass (a gray failure)", ("app_error", "health_check"),
          "the model endpoint fails: read the upstream's logs; make the health check deep enough to see it"),
    Cause("inference_timeout", "Inference requests hang", ("resources", "app_error"),
          "inference requests hang: check the model server's queue, GPU/CPU and timeouts"),
    Cause("inference_slow", "Inference works, but slowly", ("resources",),
          "inference works but slowly: check load, CPU/GPU and scale out"),
    Cause("stream_broken", "Streamed completions stall, end early or carry malformed frames", ("serialization", "app_error"),
          "streamed completions stall, end early or carry malformed frames: read the upstream's logs"),
    Cause("not_loopback", "The host is not on loopback, so diagnose did not probe it", (),
          "diagnose probes only 127.0.0.1 / ::1: probe this address from the gateway's host yourself"),
    # -- advice only: no probe from the gateway's side names these
    Cause("mtu_mismatch", "Large answers break on the way (MTU mismatch, fragmentation, cut connections)", ("mtu", "tcp"),
          "compare failures by answer size: long and streamed answers fail, short ones pass", diagnosed=False),
    Cause("resource_exhaustion", "The replica is starved of CPU, memory, file descriptors or pools", ("resources",),
          "watch the replica's CPU, memory and open files while it fails", diagnosed=False),
    Cause("health_check_settings", "The health check's settings detect or readmit slower than needed", ("health_check",),
          "compare the measured detection and recovery with what interval, timeout and thresholds allow",
          diagnosed=False),
    Cause("load_balancing", "Load balancing, retries or the panic threshold keep traffic on a broken replica",
          ("load_balancing",),
          "find which replica each failed request went to, and what the retry policy and panic threshold allowed",
          diagnosed=False),
    Cause("upstream_definition", "The gateway's upstream definition points at the wrong address or port",
          ("upstream_definition",),
          "compare the cluster's endpoints in the gateway configuration with where the replicas listen",
          diagnosed=False),
]
CAUSES: dict[str, Cause] = {cause.name: cause for cause in _CAUSES}
HEALTHY = "healthy"  # what diagnose names when every layer passes

FAULT_CAUSES: dict[str, tuple[str, ...]] = {
    # Toxiproxy toxics on the wire.
    "reset_peer": ("connection_reset", "connection_closed"),
    "down": ("connection_refused", "upstream_definition"),
    "timeout": ("no_response", "connection_timeout"),
    "latency": ("health_check_timeout", "inference_slow", "resource_exhaustion"),
    "bandwidth": ("no_response", "resource_exhaustion", "connection_timeout"),
    "slow_close": ("connection_reset", "inference_failing"),
    "slicer": ("mtu_mismatch", "stream_broken"),
    "limit_data": ("connection_closed", "mtu_mismatch"),
    # Process faults (the supervisor restarts the replica, as an orchestrator would).
    "process_kill": ("connection_closed", "connection_refused", "health_check_settings"),
    "process_freeze": ("no_response", "resource_exhaustion", "health_check_settings"),
    "process_restart": ("connection_closed", "connection_refused", "upstream_definition"),
    "oom": ("connection_closed", "resource_exhaustion"),
    "port_change": ("connection_closed", "connection_refused", "upstream_definition"),
    # Fault modes of the fake servers: '<kind>:<mode>' is more precise than the kind alone.
    "llm_fault": ("inference_failing", "resource_exhaustion"),
    "llm_fault:error_status": ("inference_failing", "resource_exhaustion"),
    "llm_fault:slow_ttft": ("inference_slow", "health_check_settings"),
    "llm_fault:slow_tokens": ("inference_slow", "health_check_settings"),
    "llm_fault:hang_before_headers": ("inference_timeout", "resource_exhaustion"),
    "llm_fault:stall_stream": ("stream_broken", "resource_exhaustion"),
    "llm_fault:truncate_stream": ("stream_broken", "connection_reset"),
    "llm_fault:malformed_sse": ("stream_broken", "wrong_protocol"),
    "llm_fault:midstream_error": ("stream_broken", "inference_failing"),
    "llm_fault:wrong_content_type": ("wrong_content_type", "wrong_protocol"),
    "llm_fault:health_fail": ("health_check_failing", "inference_failing"),
    "llm_fault:inference_fail": ("inference_failing", "health_check_settings"),
    "llm_fault:memory_growth": ("resource_exhaustion", "connection_closed"),
    "llm_fault:cpu_burn": ("resource_exhaustion", "inference_slow"),
    "llm_fault:openai_error": ("inference_failing", "resource_exhaustion"),
    "llm_fault:stall_first_token": ("stream_broken", "inference_timeout"),
    "llm_fault:keepalive_only": ("stream_broken", "inference_timeout"),
    "anthropic_fault": ("inference_failing", "resource_exhaustion"),
    "anthropic_fault:anthropic_error": ("inference_failing", "resource_exhaustion"),
    "anthropic_fault:slow_ttft": ("inference_slow", "health_check_settings"),
    "anthropic_fault:slow_tokens": ("inference_slow", "health_check_settings"),
    "anthropic_fault:hang_before_headers": ("inference_timeout", "resource_exhaustion"),
    "anthropic_fault:stall_stream": ("stream_broken", "resource_exhaustion"),
    "anthropic_fault:truncate_stream": ("stream_broken", "connection_reset"),
    "anthropic_fault:malformed_sse": ("stream_broken", "wrong_protocol"),
    "anthropic_fault:midstream_error": ("stream_broken", "inference_failing"),
    "anthropic_fault:stall_first_token": ("stream_broken", "inference_timeout"),
    "anthropic_fault:keepalive_only": ("stream_broken", "inference_timeout"),
    "anthropic_fault:wrong_content_type": ("wrong_content_type", "wrong_protocol"),
    "anthropic_fault:health_fail": ("health_check_failing", "inference_failing"),
    "anthropic_fault:inference_fail": ("inference_failing", "health_check_settings"),
    "anthropic_fault:memory_growth": ("resource_exhaustion", "connection_closed"),
    "anthropic_fault:cpu_burn": ("resource_exhaustion", "inference_slow"),
    "mcp_fault": ("mcp_schema_mismatch", "mcp_protocol_version", "mcp_session"),
    "mcp_fault:unsupported_protocol_version": ("mcp_protocol_version", "mcp_schema_mismatch"),
    "mcp_fault:wrong_content_type": ("wrong_content_type", "mcp_schema_mismatch"),
    "mcp_fault:session_expiry": ("mcp_session", "load_balancing"),
    "cert": ("tls_handshake", "tls_expired", "tls_untrusted", "tls_hostname"),
    "cert:expired": ("tls_expired", "health_check_settings"),
    "cert:not_yet_valid": ("tls_not_yet_valid", "health_check_settings"),
    "cert:wrong_host": ("tls_hostname", "health_check_settings"),
    "cert:untrusted": ("tls_untrusted", "health_check_settings"),
    "dns": ("dns_failure", "upstream_definition"),
    "dns:wrong_address": ("connection_refused", "dns_failure", "upstream_definition"),
    "dns:flip": ("load_balancing", "dns_failure"),
}

EXPECTATION_CAUSES: dict[str, tuple[str, ...]] = {
    "upstream_unhealthy": ("health_check_settings", "inference_failing"),
    "upstream_healthy": ("health_check_settings", "connection_refused"),
    "no_traffic_to": ("load_balancing", "health_check_settings"),
    "traffic_to": ("load_balancing", "dns_failure"),
    "error_rate": ("load_balancing", "health_check_settings"),
    "latency": ("resource_exhaustion", "load_balancing"),
    "all_down_response": ("load_balancing", "health_check_settings"),
    "max_request_time": ("resource_exhaustion", "health_check_settings"),
    # The diagnosis named another cause than the injected one (the advice adds both causes).
    "diagnosis": ("health_check_misconfigured", "upstream_definition"),
    # A fallback never used, used late, or taking traffic without a fault: routing and its health settings.
    "fallback_within": ("load_balancing", "health_check_settings"),
    # Retries multiplying the load on upstreams that are already failing.
    "upstream_attempts": ("load_balancing", "resource_exhaustion"),
    # The fallback did not serve its share: not configured, not triggered, or the primary kept the traffic.
    "served_by": ("load_balancing", "health_check_settings"),
    # Tries sent back to a replica that asked for a pause: retries and cooldowns that ignore Retry-After.
    "retry_after_honoured": ("load_balancing", "resource_exhaustion"),
    # The gateway's own "nothing available" answer gives clients no time to come back.
    "gateway_retry_after": ("load_balancing", "resource_exhaustion"),
    # Streams cut and answers retried away: paid-for tokens no client got.
    "tokens_wasted": ("stream_broken", "load_balancing"),
    # A stream that stalled before its first token held too long, let go of by something else, or never.
    "stall_detected": ("stream_broken", "inference_timeout"),
}
# Errors before any fault mean the stack itself is wrong, not the gateway's reaction.
BASELINE_CAUSES = ("upstream_definition", "wrong_protocol", "wrong_content_type")


def fault_causes(kind: str, mode: object = None) -> tuple[str, ...] | None:
    """The causes a fault imitates: its '<kind>:<mode>' entry, else its kind's (None: not catalogued)."""
    return FAULT_CAUSES.get(f"{kind}:{mode}") or FAULT_CAUSES.get(kind)


def diagnosable(name: str) -> str:
    """``name`` if diagnose can name it (or it is 'healthy'); else a ValueError saying what to write."""
    if name == HEALTHY or (name in CAUSES and CAUSES[name].diagnosed):
        return name
    names = [c.name for c in _CAUSES if c.diagnosed] + [HEALTHY]
    if name in CAUSES:
        raise ValueError(f"cause {name!r} is in the catalogue, but diagnose never names it (no probe from the "
                         f"gateway's side can tell it); expected one of {', '.join(names)}")
    if name in ROWS:  # a row of Table 1 (the report's former advice keys), not a cause
        of_row = [c.name for c in _CAUSES if c.diagnosed and name in c.rows]
        raise ValueError(f"{name!r} is a row of Table 1 ({ROWS[name].table1}), not a cause; diagnose names "
                         f"{' or '.join(of_row)} for it")
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    raise ValueError(f"unknown cause {name!r}{hint}; expected one of {', '.join(names)}")
