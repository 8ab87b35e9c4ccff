"""HAProxy and nginx, the real Debian binaries, started through the harness and judged on scenarios.

`chaosgate run scenarios/replica-reset.yaml --gateway haproxy` must hold every expectation of the
Envoy scenario; nginx OSS cannot run it (no active health checks: a clear error at the file's
line), and runs its own version in scenarios/compare/. The all-down scenarios pin each gateway's
exact answer when no replica is left.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.journal import read_journal
from harness.scenario import Scenario, load_scenario

from .conftest import ROOT, chaosgate, health_changes, processes_of_run, require_components



def run_passes(scenario_file: Path, out: Path, gateway: str | None = None) -> tuple[Scenario, list[dict[str, Any]]]:
    """Run ``scenario_file`` (with ``--gateway``) through the CLI; every expectation must hold."""
    scenario = load_scenario(scenario_file, gateway)
    args = ["run", str(scenario_file), "--out", str(out), "--quiet", *(["--gateway", gateway] if gateway else [])]
    result = chaosgate(*args, timeout=scenario.load.duration + 90)
    run_dir = out / scenario.name
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["passed"] and summary["complete"], summary
    assert [v["kind"] for v in summary["expectations"]] == [e.kind for e in scenario.expect]
    events = read_journal(run_dir / "journal.jsonl")
    assert events[0]["gateway"] == scenario.gateway.kind
    assert processes_of_run(run_dir) == [], "the stack was torn down"
    return scenario, events


def addressed(events: list[dict[str, Any]]) -> set[str]:
    """The replica addresses the gateway's upstream header named."""
    return {e["upstream"] for e in events if e["type"] == "request" and e["upstream"]}


# -- HAProxy ------------------------------------------------------------------------------------

@pytest.mark.integration
def test_haproxy_runs_tls_expired(tmp_path: Path) -> None:
    require_components("haproxy")
    _, events = run_passes(ROOT / "scenarios" / "tls-expired.yaml", tmp_path, gateway="haproxy")
    ready = next(e for e in events if e["type"] == "stack.ready")
    assert "ssl verify required ca-file" in ready["gateway_config"]
    changes = health_changes(events, "chat[0]")
    assert [healthy for healthy, _ in changes] == [True, False, True], changes
    assert changes[1][1].startswith("DOWN L6")  # HAProxy's check failed in the TLS layer


MCP_SESSIONS = """\
name: haproxy-mcp-sessions
gateway: {kind: haproxy, health_check: {interval: 1s, timeout: 500ms}, panic_threshold: 0}
upstreams:
  - {name: chat, kind: openai, replicas: 2}
  - {name: tools, kind: mcp, replicas: 3}
load: {users: 6, spawn_rate: 6, duration: 8s, mix: {chat: 0.5, mcp: 0.5}}
expect:
  - {kind: error_rate, window: {from: 0s, to: 8s}, max: 0.0}
"""


@pytest.mark.integration
def test_haproxy_keeps_mcp_sessions_on_their_replica(tmp_path: Path) -> None:
    # Without stickiness, round robin would send a session's tools/list to a replica that never saw its
    # initialize, which answers 404: every step of every session must succeed.
    require_components("haproxy")
    scenario_file = tmp_path / "mcp-sessions.yaml"
    scenario_file.write_text(MCP_SESSIONS)
    _, events = run_passes(scenario_file, tmp_path / "out")
    steps = [e for e in events if e["type"] == "request" and e["kind"].startswith("mcp_")]
    assert len({e["kind"] for e in steps}) >= 2 and all(e["error"] is None for e in steps)
    assert len({e["replica"] for e in steps}) >= 2, "sessions were spread over the replicas"


# -- nginx --------------------------------------------------------------------------------------

# nginx disables chat[0] at the first failed handshake (max_fails 1), retries elsewhere, and takes
# it back when a probe after fail_timeout (2s) succeeds after the rotation back.
NGINX_TLS_EXPIRED = """\
name: tls-expired-nginx
gateway:
  kind: nginx
  health_check: null
  outlier_detection: {consecutive_5xx: 1, base_ejection_time: 2s}
  panic_threshold: 0
  retries: {num_retries: 2, retry_on: [connect-failure, reset]}
upstreams:
  - {name: chat, kind: openai, replicas: 3, tls: {server_name: chat.upstream.test}}
load: {users: 4, spawn_rate: 4, duration: 14s, wait: 50ms, mix: {chat: 0.8, chat_stream: 0.2}}
faults:
  - {kind: cert, mode: expired, target: "chat[0]", at: 4s, for: 6s}
expect:
  - {kind: error_rate, window: baseline, max: 0.0}
  - {kind: upstream_unhealthy, target: "chat[0]", within: promised}
  - {kind: error_rate, window: after_detection, max: 0.0}
  - {kind: error_rate, window: fault, max: 0.02}
  - {kind: upstream_healthy, target: "chat[0]", within: promised}
"""

@pytest.mark.integration
def test_nginx_runs_its_tls_expired(tmp_path: Path) -> None:
    require_components("nginx")
    scenario_file = tmp_path / "tls-expired-nginx.yaml"
    scenario_file.write_text(NGINX_TLS_EXPIRED)
    _, events = run_passes(scenario_file, tmp_path)
    ready = next(e for e in events if e["type"] == "stack.ready")
    assert "proxy_ssl_verify on;" in ready["gateway_config"]
    assert [healthy for healthy, _ in health_changes(events, "chat[0]")] == [True, False, True]
    errors = (tmp_path / "tls-expired-nginx" / "nginx" / "error.log").read_text()
    assert "certificate has expired" in errors and "upstream server temporarily disabled" in errors
