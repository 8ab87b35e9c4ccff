"""The causes diagnose can name: each maps to a row of Table 1 of the seed article
(../shared/seed/no-healthy-upstream.txt) and says what to do next in its terms."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cause:
    """One named cause: its Table 1 row and the next step."""

    name: str
    row: str      # Table 1: "<category> / <specific problem>"
    next_step: str


_CAUSES = [
    Cause("dns_failure", "Network / DNS Resolution Failure",
          "dig the name against the gateway's resolver; fix the A/AAAA record or the resolver configuration"),
    Cause("connection_refused", "Upstream Service / Service Crashed or Not Running; Network / Firewall Block; "
          "Gateway Config / Incorrect Upstream Definition",
          "check the process is running and listening on that port (ps, ss -ltnp); check the port in the gateway config"),
    Cause("connection_timeout", "Network / Firewall Block (drop) or Routing Problem",
          "nc -vz from the gateway; check firewall rules (iptables, security groups) and routes (ip route)"),
    Cause("connection_closed", "Upstream Service / Service Crashed or Not Running (behind a proxy or load balancer "
          "that accepts the connection and closes it)",
          "the port accepts and closes at once: check the process behind it (ps, logs, OOM kills in dmesg); restart it"),
    Cause("connection_reset", "Upstream Service / Service Crashed; Network (TCP reset)",
          "the peer resets connections: check the upstream's logs and any middlebox between gateway and upstream"),
    Cause("no_response", "Upstream Service / Resource Exhaustion or Application-Level Error (hung: deadlock, "
          "frozen process); Network / Firewall Block (silent drop)",
          "the connection is accepted but nothing answers: check the process state (ps: T/D), CPU, memory, deadlocks"),
    Cause("tls_expired", "Gateway Config / SSL/TLS Handshake Failure (expired certificate)",
          "renew the upstream's certificate (openssl s_client -connect ... to confirm the dates)"),
    Cause("tls_not_yet_valid", "Gateway Config / SSL/TLS Handshake Failure (certificate not yet valid)",
          "check the upstream's certificate dates and the clocks of both hosts"),
    Cause("tls_hostname", "Gateway Config / SSL/TLS Handshake Failure (name mismatch)",
          "the certificate does not name the host the gateway expects: reissue it with that name, or fix the SNI/SAN setting"),
    Cause("tls_untrusted", "Gateway Config / SSL/TLS Handshake Failure (untrusted CA / chain)",
          "the certificate's issuer is not in the gateway's trust store: add the CA or serve the full chain"),
    Cause("tls_handshake", "Gateway Config / SSL/TLS Handshake Failure",
          "openssl s_client against the upstream; align TLS versions, ciphers and ALPN"),
    Cause("health_check_failing", "Upstream Service / Application-Level Error",
          "the upstream itself reports unhealthy on the health path: read its logs and the body of the health answer"),
    Cause("health_check_timeout", "Gateway Config / Misconfigured Health Check (timeout); Upstream Service / "
          "Resource Exhaustion",
          "the health answer comes, but later than the check's timeout: find why it is slow, or raise the timeout"),
    Cause("health_check_misconfigured", "Gateway Config / Misconfigured Health Check",
          "the check asks for something the upstream does not serve (path, method or expected status): fix the check"),
    Cause("wrong_protocol", "Protocol/API Compatibility / Protocol Mismatch (HTTP/1.1 vs HTTP/2)",
          "configure gateway and upstream for the same protocol (curl -v --http2-prior-knowledge / --http1.1)"),
    Cause("wrong_content_type", "Protocol/API Compatibility / Data Serialization Issues",
          "the upstream answers with the wrong Content-Type (curl -v): check what really serves that port"),
    Cause("mcp_protocol_version", "Protocol/API Compatibility / Model Context Protocol (MCP) Mismatch (version)",
          "align the MCP protocol versions of client and server"),
    Cause("mcp_schema_mismatch", "Protocol/API Compatibility / Model Context Protocol (MCP) Mismatch (schema)",
          "inspect the initialize / tools/list / tools/call payloads against the MCP schema; fix the server"),
    Cause("mcp_session", "Protocol/API Compatibility / Model Context Protocol (MCP) Mismatch (session)",
          "sessions expire or are unknown: check session affinity in the gateway and the server's session store"),
    Cause("inference_failing", "Upstream Service / Application-Level Error (inference fails while health passes)",
          "the model endpoint fails: read the upstream's logs; make the health check deep enough to see it"),
    Cause("inference_timeout", "Upstream Service / Resource Exhaustion or Application-Level Error (inference hangs)",
          "inference requests hang: check the model server's queue, GPU/CPU and timeouts"),
    Cause("inference_slow", "Upstream Service / Resource Exhaustion",
          "inference works but slowly: check load, CPU/GPU and scale out"),
    Cause("stream_broken", "Protocol/API Compatibility / Data Serialization Issues (broken SSE stream)",
          "streamed completions stall, end early or carry malformed frames: read the upstream's logs"),
    Cause("not_loopback", "(not probed)",
          "diagnose probes only 127.0.0.1 / ::1: probe this address from the gateway's host yourself"),
]
CAUSES: dict[str, Cause] = {cause.name: cause for cause in _CAUSES}
