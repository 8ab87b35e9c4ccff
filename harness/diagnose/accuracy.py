"""The accuracy suite of diagnose: every fault kind the harness can inject, injected one after
another into one running stack through the harness's own fault API; during each, the host is
diagnosed through the gateway's admin view and the named cause is compared with the one
expected for that fault. A hand-started second Envoy (plain config file) over the same replicas
supplies the misconfigured health checks, which are gateway settings rather than faults.

Used by bench/diagnose_accuracy.py (writes the confusion table into docs/diagnose.md) and
tests/integration/test_diagnose_accuracy.py (fails on any misdiagnosis).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.catalogue import HEALTHY  # the expected "cause" of a fault that leaves every layer passing
from harness.diagnose.base import ProbeSettings
from harness.diagnose.envoy_source import from_admin
from harness.diagnose.scheduled import replica_aliases
from harness.diagnose.walk import HostDiagnosis, diagnose_address, walk
from harness.faults import FAULTS, Fault
from harness.gateways.envoy import envoy_binary
from harness.processes import ProcessGroup, answers, free_port
from harness.runtimes.base import Stack
from harness.runtimes.local import LocalRuntime
from harness.scenario import Scenario, parse_scenario

SCENARIO = """
name: diagnose-accuracy
gateway:
  health_check: {path: /health, interval: 0.5s, timeout: 0.3s, unhealthy_threshold: 2, healthy_threshold: 1,
                 no_traffic_interval: 0.5s, mcp: true}   # the mcp pool: Envoy POSTs initialize to /mcp
  panic_threshold: 0
upstreams:
  - {name: chat, kind: openai, replicas: 2, memory_limit: 128Mi,
     restart: {initial_backoff: 4s, factor: 1, max_backoff: 4s}}
  - {name: secure, kind: openai, replicas: 1, tls: true}
  - {name: tools, kind: mcp, replicas: 1}
  - {name: claude, kind: anthropic, replicas: 1}
  - {name: named, kind: openai, replicas: 2,
     dns: {refresh_rate: 0.5s, ttl: 1, lookup_family: v4_preferred, query_timeout: 1, query_tries: 1}}
load: {duration: 600s}
"""


@dataclass(frozen=True)
class Case:
    """One fault injected on one replica, and the cause diagnose must name for it."""

    label: str                  # what the confusion table calls it, e.g. cert:expired
    target: str                 # the replica, e.g. chat[0]
    fault: dict[str, Any]       # the fault's scenario fields (kind, mode, parameters)
    expected: str               # the cause, or HEALTHY
    detected: bool              # whether the gateway (shallow /health check) marks the host unhealthy
    why: str = ""               # for HEALTHY / coarse expectations: why nothing more specific is visible
    settle: bool = False        # diagnose once the replica answers /health again (a fault that ends by itself)


MEMORY_BELOW_LIMIT = "memory that grows below the limit changes no answer; use oom for the kill"
CPU_BELOW_THRESHOLDS = "half a CPU burnt delays answers by tens of ms: below every threshold"


def _anthropic(mode: str, expected: str, detected: bool = False, why: str = "", **params: Any) -> Case:
    """A fault mode of the fake Anthropic server on claude[0] (probed on the Messages API)."""
    return Case(f"anthropic_fault:{mode}", "claude[0]", {"kind": "anthropic_fault", "mode": mode, **params},
                expected, detected, why)


CASES: list[Case] = [
    # -- network: Toxiproxy toxics on the wire between the gateway and chat[0]
    Case("latency", "chat[0]", {"kind": "latency", "latency": "1s"}, "health_check_timeout", True),
    Case("bandwidth", "chat[0]", {"kind": "bandwidth", "rate_kbps": 0}, "no_response", True,
         "rate 0 lets nothing through: a hung peer, like timeout"),
    Case("timeout", "chat[0]", {"kind": "timeout", "timeout": 0}, "no_response", True),
    Case("reset_peer", "chat[0]", {"kind": "reset_peer", "timeout": 0}, "connection_reset", True),
    Case("slow_close", "chat[0]", {"kind": "slow_close", "delay": "1s"}, HEALTHY, False,
         "a delayed close changes no answer"),
    Case("slicer", "chat[0]", {"kind": "slicer", "average_size": 8, "delay": "1ms"}, HEALTHY, False,
         "answers cut into pieces still arrive whole"),
    Case("limit_data", "chat[0]", {"kind": "limit_data", "bytes": 16}, "connection_closed", True),
    Case("down", "chat[0]", {"kind": "down"}, "connection_refused", True),
    # -- application: fault modes of the fake model server
    Case("llm_fault:error_status", "chat[0]", {"kind": "llm_fault", "mode": "error_status"}, "inference_failing", False),
    Case("llm_fault:slow_ttft", "chat[0]", {"kind": "llm_fault", "mode": "slow_ttft", "ttft": "2s"}, "inference_slow", False),
    Case("llm_fault:slow_tokens", "chat[0]", {"kind": "llm_fault", "mode": "slow_tokens", "tokens_per_s": 4},
         "inference_slow", False),
    Case("llm_fault:stall_stream", "chat[0]", {"kind": "llm_fault", "mode": "stall_stream"}, "stream_broken", False),
    Case("llm_fault:truncate_stream", "chat[0]", {"kind": "llm_fault", "mode": "truncate_stream"}, "stream_broken", False),
    Case("llm_fault:malformed_sse", "chat[0]", {"kind": "llm_fault", "mode": "malformed_sse"}, "stream_broken", False),
    Case("llm_fault:midstream_error", "chat[0]", {"kind": "llm_fault", "mode": "midstream_error"}, "stream_broken", False),
    Case("llm_fault:hang_before_headers", "chat[0]", {"kind": "llm_fault", "mode": "hang_before_headers"},
         "inference_timeout", False),
    Case("llm_fault:wrong_content_type", "chat[0]", {"kind": "llm_fault", "mode": "wrong_content_type"},
         "wrong_content_type", False),
    Case("llm_fault:health_fail", "chat[0]", {"kind": "llm_fault", "mode": "health_fail"}, "health_check_failing", True),
    Case("llm_fault:inference_fail", "chat[0]", {"kind": "llm_fault", "mode": "inference_fail"}, "inference_failing", False),
    Case("llm_fault:memory_growth", "chat[0]", {"kind": "llm_fault", "mode": "memory_growth", "mb_per_s": 20,
                                                "max_mb": 24}, HEALTHY, False,
         MEMORY_BELOW_LIMIT),
    Case("llm_fault:cpu_burn", "chat[0]", {"kind": "llm_fault", "mode": "cpu_burn", "duty": 0.5, "period": "0.1s"},
         HEALTHY, False, CPU_BELOW_THRESHOLDS),
    Case("llm_fault:openai_error", "chat[0]", {"kind": "llm_fault", "mode": "openai_error"}, "inference_failing",
         False),
    Case("llm_fault:stall_first_token", "chat[0]", {"kind": "llm_fault", "mode": "stall_first_token"},
         "stream_broken", False),
    Case("llm_fault:keepalive_only", "chat[0]", {"kind": "llm_fault", "mode": "keepalive_only", "interval": "0.5s"},
         "stream_broken", False),
    # -- application: fault modes of the fake Anthropic server (the Messages API's probe)
    _anthropic("anthropic_error", "inference_failing", error="overloaded_error"),
    _anthropic("inference_fail", "inference_failing"),
    _anthropic("slow_ttft", "inference_slow", ttft="2s"),
    _anthropic("slow_tokens", "inference_slow", tokens_per_s=3),   # 8 streamed tokens: 2.3s
    _anthropic("stall_stream", "stream_broken"),
    _anthropic("truncate_stream", "stream_broken"),
    _anthropic("malformed_sse", "stream_broken"),
    _anthropic("midstream_error", "stream_broken"),
    _anthropic("stall_first_token", "stream_broken"),
    _anthropic("keepalive_only", "stream_broken", interval="0.5s"),
    _anthropic("hang_before_headers", "inference_timeout"),
    _anthropic("wrong_content_type", "wrong_content_type"),
    _anthropic("health_fail", "health_check_failing", detected=True),
    _anthropic("memory_growth", HEALTHY, why=MEMORY_BELOW_LIMIT,
               mb_per_s=20, max_mb=24),
    _anthropic("cpu_burn", HEALTHY, why=CPU_BELOW_THRESHOLDS,
               duty=0.5, period="0.1s"),
    # -- MCP: schema and protocol drift of the fake MCP server
    Case("mcp_fault:unsupported_protocol_version", "tools[0]",
         {"kind": "mcp_fault", "mode": "unsupported_protocol_version"}, "mcp_protocol_version", True),
    Case("mcp_fault:missing_capabilities", "tools[0]", {"kind": "mcp_fault", "mode": "missing_capabilities"},
         "mcp_schema_mismatch", True),
    Case("mcp_fault:missing_server_info", "tools[0]", {"kind": "mcp_fault", "mode": "missing_server_info"},
         "mcp_schema_mismatch", True),
    Case("mcp_fault:input_schema_not_object", "tools[0]", {"kind": "mcp_fault", "mode": "input_schema_not_object"},
         "mcp_schema_mismatch", False),
    Case("mcp_fault:result_without_content", "tools[0]", {"kind": "mcp_fault", "mode": "result_without_content"},
         "mcp_schema_mismatch", False),
    Case("mcp_fault:structured_content_mismatch", "tools[0]",
         {"kind": "mcp_fault", "mode": "structured_content_mismatch"}, "mcp_schema_mismatch", False),
    Case("mcp_fault:wrong_jsonrpc_id", "tools[0]", {"kind": "mcp_fault", "mode": "wrong_jsonrpc_id"},
         "mcp_schema_mismatch", False),
    Case("mcp_fault:wrong_content_type", "tools[0]", {"kind": "mcp_fault", "mode": "wrong_content_type"},
         "wrong_content_type", False),
    Case("mcp_fault:session_expiry", "tools[0]", {"kind": "mcp_fault", "mode": "session_expiry"}, "mcp_session", False),
    Case("mcp_fault:tools_disappear", "tools[0]", {"kind": "mcp_fault", "mode": "tools_disappear"},
         "mcp_schema_mismatch", False),
    # -- TLS: certificates swapped on secure[0]
    Case("cert:expired", "secure[0]", {"kind": "cert", "mode": "expired"}, "tls_expired", True),
    Case("cert:not_yet_valid", "secure[0]", {"kind": "cert", "mode": "not_yet_valid"}, "tls_not_yet_valid", True),
    Case("cert:wrong_host", "secure[0]", {"kind": "cert", "mode": "wrong_host"}, "tls_hostname", True),
    Case("cert:untrusted", "secure[0]", {"kind": "cert", "mode": "untrusted"}, "tls_untrusted", True),
    # -- DNS: the fake DNS server answers named[0]'s name wrongly (the gateway resolves through it)
    Case("dns:nxdomain", "named[0]", {"kind": "dns", "mode": "nxdomain"}, "dns_failure", False),
    Case("dns:servfail", "named[0]", {"kind": "dns", "mode": "servfail"}, "dns_failure", False),
    Case("dns:no_answer", "named[0]", {"kind": "dns", "mode": "no_answer"}, "dns_failure", False),
    Case("dns:wrong_address", "named[0]", {"kind": "dns", "mode": "wrong_address"}, "connection_refused", False,
         "the name resolves (to ::1) and nothing listens there: whether the record or the service is wrong, "
         "only the operator knows; the evidence names the address DNS gave"),
    Case("dns:flip", "named[0]", {"kind": "dns", "mode": "flip", "to": "named[1]"}, HEALTHY, False,
         "the name now leads to another healthy replica: nothing fails, traffic just lands elsewhere"),
    Case("dns:ttl", "named[0]", {"kind": "dns", "mode": "ttl", "ttl": 60}, HEALTHY, False,
         "the right address with another TTL: nothing fails"),
    # -- processes (local runtime): behind Toxiproxy a dead replica is a port that accepts and closes
    Case("process_freeze", "chat[0]", {"kind": "process_freeze"}, "no_response", True),
    Case("process_kill", "chat[0]", {"kind": "process_kill"}, "connection_closed", True,
         "the gateway dials the replica's proxy, which accepts and closes when the replica is gone; "
         "without a proxy it is connection_refused"),
    Case("port_change", "chat[0]", {"kind": "port_change"}, "connection_closed", True,
         "as process_kill: nothing listens where the definition points, behind the proxy"),
    Case("oom", "chat[1]", {"kind": "oom"}, "connection_closed", True,
         "an OOM kill is a kill to every probe: the kernel's oom_kill counter, not the network, tells them apart"),
    Case("process_restart", "chat[1]", {"kind": "process_restart"}, HEALTHY, False,
         "a graceful restart is over once the new process answers (within milliseconds here): diagnosed then, "
         "nothing is left to see; while it starts, it is a kill (connection_closed)", settle=True),
]


@dataclass(frozen=True)
class Outcome:
    """What diagnose named for one case."""

    case: Case
    named: str                  # the cause named, or HEALTHY
    gateway_detected: bool      # the gateway marked the host unhealthy before the diagnosis
    layer: str | None
    evidence: str
    seconds: float

    @property
    def correct(self) -> bool:
        return self.named == self.case.expected


def _named(diagnosis: HostDiagnosis) -> str:
    return diagnosis.cause or HEALTHY


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class AccuracyRun:
    """One stack of the accuracy scenario, and the injection of cases into it."""

    def __init__(self, stack: Stack, scenario: Scenario, settings: ProbeSettings) -> None:
        self.stack = stack
        self.scenario = scenario
        self.settings = settings
        hc = scenario.gateway.health_check
        assert hc is not None
        # bounds from the scenario's health check, with margin for a loaded machine
        self.detect_s = hc.interval * (hc.unhealthy_threshold + 1) + hc.timeout + 3.0
        backoff = max(u.restart.max_backoff for u in scenario.upstreams)
        self.recover_s = backoff + hc.interval * (hc.healthy_threshold + 1) + 10.0
        self.kinds: dict[str, str] = {u.name: str(u.kind) for u in scenario.upstreams}

    def _healthy(self, replica: str) -> bool | None:
        try:
            health = self.stack.replica_health().get(replica)
        except Exception:  # noqa: BLE001 - the admin API may hiccup under load; poll again
            return None
        return None if health is None else health.healthy

    def run_case(self, case: Case) -> Outcome:
        fault: Fault = FAULTS[case.fault["kind"]].model_validate(
            {**case.fault, "target": case.target, "at": 0, "for": 1})
        address = self.stack.gateway_address(case.target)
        fault.inject(self.stack, case.target)
        try:
            if case.settle and not _wait(lambda: answers(f"http://{address}/health"), self.recover_s):
                raise RuntimeError(f"{case.target} did not answer /health within {self.recover_s:g}s of {case.label}")
            detected = _wait(lambda: self._healthy(case.target) is False, self.detect_s) if case.detected \
                else self._healthy(case.target) is False
            view = from_admin(str(self.stack.gateway.admin_url), self.kinds)
            diagnosis = diagnose_address(view, address, self.settings, aliases=replica_aliases(self.stack, case.target))
        finally:
            fault.clear(self.stack, case.target)
        failure = diagnosis.failure
        outcome = Outcome(case, _named(diagnosis), detected, failure.layer if failure else None,
                          diagnosis.evidence, diagnosis.seconds)
        if not _wait(lambda: self._healthy(case.target) is True, self.recover_s):
            raise RuntimeError(f"{case.target} did not become healthy again within {self.recover_s:g}s "
                               f"after {case.label} was cleared")
        return outcome


@dataclass(frozen=True)
class Misconfigured:
    """A health check of the hand-started Envoy that asks the replica for what it does not serve."""

    label: str
    cluster: str
    replica: str
    check: dict[str, Any]   # Envoy's http_health_check


MISCONFIGURED = [
    Misconfigured("health_check:wrong_path", "hc-wrong-path", "chat[1]", {"path": "/healthz"}),
    Misconfigured("health_check:wrong_status", "hc-wrong-status", "chat[1]",
                  {"path": "/health", "expected_statuses": [{"start": 204, "end": 205}]}),
    # an MCP health check whose expected body no correct InitializeResult has (tools.listChanged: true)
    Misconfigured("health_check:mcp_expect_body", "hc-mcp-body", "tools[0]", {
        "path": "/mcp", "method": "POST",
        "send": {"text": ('{"jsonrpc":"2.0","id":"hc","method":"initialize","params":{"protocolVersion":"2025-06-18",'
                          '"capabilities":{},"clientInfo":{"name":"hc","version":"1"}}}').encode().hex()},
        "receive": [{"text": b'"listChanged":true'.hex()}],
        "request_headers_to_add": [{"header": {"key": "content-type", "value": "application/json"}},
                                   {"header": {"key": "accept", "value": "application/json, text/event-stream"}}]}),
]


def _hc_config(addresses: dict[str, str], admin_port: int) -> dict[str, Any]:
    """A plain Envoy bootstrap: one cluster per misconfigured check, over the replica it names."""
    clusters = []
    for m in MISCONFIGURED:
        host, port = addresses[m.replica].rsplit(":", 1)
        clusters.append({
            "name": m.cluster, "type": "STATIC", "connect_timeout": "1s",
            "common_lb_config": {"update_merge_window": "0s"},
            "load_assignment": {"cluster_name": m.cluster, "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": host, "port_value": int(port)}}}}]}]},
            "health_checks": [{"timeout": "0.3s", "interval": "0.5s", "no_traffic_interval": "0.5s",
                               "unhealthy_threshold": 1, "healthy_threshold": 1, "http_health_check": m.check}],
        })
    return {"admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
            "static_resources": {"clusters": clusters}}


@contextmanager
def hand_started_envoy(addresses: dict[str, str], work: Path) -> Iterator[str]:
    """An Envoy started by hand from a plain config file whose health checks are misconfigured, over
    the replicas at ``addresses`` (replica -> host:port); yields its admin URL."""
    admin_port = free_port()
    config = work / "misconfigured-envoy.yaml"
    config.write_text(yaml.safe_dump(_hc_config(addresses, admin_port)))
    processes = ProcessGroup(work / "logs")
    try:
        child = processes.start("envoy-misconfigured", [envoy_binary(), "-c", str(config), "--concurrency", "1",
                                                        "--disable-hot-restart", "--base-id", str(admin_port),
                                                        "--log-level", "warn"])
        url = f"http://127.0.0.1:{admin_port}"
        processes.wait_ready(child, lambda: answers(f"{url}/ready"), 20)
        yield url
    finally:
        processes.stop_all()



def run_misconfigured(admin_url: str, settings: ProbeSettings, detect_s: float) -> list[Outcome]:
    outcomes = []
    for m in MISCONFIGURED:
        case = Case(m.label, m.replica, {"kind": "gateway setting"}, "health_check_misconfigured", True)

        def marked(cluster: str = m.cluster) -> bool:
            hosts = from_admin(admin_url).cluster(cluster).hosts
            return bool(hosts) and all(h.healthy is False for h in hosts)
        detected = _wait(marked, detect_s)
        view = from_admin(admin_url)
        diagnosis = walk(view.cluster(m.cluster), view.cluster(m.cluster).hosts[0], settings)
        failure = diagnosis.failure
        outcomes.append(Outcome(case, _named(diagnosis), detected, failure.layer if failure else None,
                                diagnosis.evidence, diagnosis.seconds))
    return outcomes


def run_suite(work: Path, cases: list[Case] | None = None, progress: Callable[[Outcome], None] | None = None,
              settings: ProbeSettings | None = None) -> list[Outcome]:
    """Start the accuracy stack in ``work``, inject every case, and return what diagnose named."""
    scenario = parse_scenario(SCENARIO, "<diagnose accuracy scenario>")
    settings = settings or ProbeSettings()
    runtime = LocalRuntime()
    outcomes: list[Outcome] = []
    try:
        stack = runtime.up(scenario, work / scenario.name)
        assert stack.process_control is not None
        stack.process_control.watch(lambda type, **fields: None)  # restart killed replicas
        run = AccuracyRun(stack, scenario, settings)
        addresses = {m.replica: stack.gateway_address(m.replica) for m in MISCONFIGURED}
        with hand_started_envoy(addresses, work) as admin_url:
            for outcome in run_misconfigured(admin_url, settings, run.detect_s):
                outcomes.append(outcome)
                if progress:
                    progress(outcome)
        for case in cases if cases is not None else CASES:
            outcome = run.run_case(case)
            outcomes.append(outcome)
            if progress:
                progress(outcome)
    finally:
        runtime.down()
    return outcomes


def confusion_table(outcomes: list[Outcome]) -> str:
    """Markdown: one row per injected fault (expected cause, named cause, layer, evidence), then the
    confusion matrix of expected × named causes, then the misses with their reasons."""
    lines = ["| injected | gateway marked it unhealthy | expected cause | named cause | layer | |",
             "|---|---|---|---|---|---|"]
    for o in outcomes:
        mark = "✓" if o.correct else "✗ MISS"
        lines.append(f"| `{o.case.label}` | {'yes' if o.gateway_detected else 'no'} | {o.case.expected} | "
                     f"{o.named} | {o.layer or '-'} | {mark} |")
    named = sorted({o.named for o in outcomes} | {o.case.expected for o in outcomes})
    counts = collections.Counter((o.case.expected, o.named) for o in outcomes)
    expected = sorted({o.case.expected for o in outcomes})
    lines += ["", "Confusion matrix (rows: expected cause, columns: named cause; counts of injected faults):", "",
              "| expected \\ named | " + " | ".join(named) + " |", "|---" * (len(named) + 1) + "|"]
    for row in expected:
        cells = [str(counts[(row, col)]) if counts[(row, col)] else "" for col in named]
        lines.append(f"| **{row}** | " + " | ".join(cells) + " |")
    right = sum(o.correct for o in outcomes)
    lines += ["", f"{right} of {len(outcomes)} injected faults named right."]
    misses = [o for o in outcomes if not o.correct]
    if misses:
        lines += ["", "Misses:", ""] + [f"- `{o.case.label}`: named {o.named} ({o.layer}): {o.evidence}" for o in misses]
    coarse = [o.case for o in outcomes if o.case.why]
    if coarse:
        lines += ["", "Where the expected cause is coarser than the fault (what no probe from the gateway's side "
                  "can tell apart):", ""] + [f"- `{c.label}` → {c.expected}: {c.why}" for c in coarse]
    return "\n".join(lines)
