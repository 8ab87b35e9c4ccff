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

from .conftest import ROOT, chaosgate, processes_of_run, require_components

COMPARE = ROOT / "scenarios" / "compare"


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


def health_changes(events: list[dict[str, Any]], replica: str) -> list[tuple[bool, str]]:
    return [(e["healthy"], e["flags"]) for e in events if e["type"] == "health" and e["replica"] == replica]


def addressed(events: list[dict[str, Any]]) -> set[str]:
    """The replica addresses the gateway's upstream header named."""
    return {e["upstream"] for e in events if e["type"] == "request" and e["upstream"]}


# -- HAProxy ------------------------------------------------------------------------------------

@pytest.mark.integration
def test_haproxy_runs_replica_reset(tmp_path: Path) -> None:
    require_components("haproxy")
    scenario, events = run_passes(ROOT / "scenarios" / "replica-reset.yaml", tmp_path, gateway="haproxy")
    started = events[0]
    assert "--gateway haproxy" in started["command"]
    assert any("not applicable to haproxy" in w for w in started["warnings"])  # no_traffic_interval
    ready = next(e for e in events if e["type"] == "stack.ready")
    assert ready["gateway_version"].startswith("2.6")
    assert "option httpchk GET /health" in ready["gateway_config"]
    # HAProxy's own words from its stats socket: DOWN while the replica resets, UP again after
    changes = health_changes(events, "chat[0]")
    assert [healthy for healthy, _ in changes] == [True, False, True], changes
    assert changes[1][1].startswith("DOWN")
    assert addressed(events) == {info["gateway_address"] for info in ready["endpoints"]["replicas"].values()}
    assert scenario.gateway.kind == "haproxy"


@pytest.mark.integration
def test_haproxy_all_down_answer(tmp_path: Path) -> None:
    require_components("haproxy")
    _, events = run_passes(COMPARE / "all-down-haproxy.yaml", tmp_path)
    bodies = {(e["status"], e.get("body", "")) for e in events if e["type"] == "request" and e["status"] == 503}
    assert bodies and all("No server is available to handle this request." in body for _, body in bodies)


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

@pytest.mark.integration
def test_nginx_runs_its_replica_reset(tmp_path: Path) -> None:
    require_components("nginx")
    _, events = run_passes(COMPARE / "replica-reset-nginx.yaml", tmp_path)
    ready = next(e for e in events if e["type"] == "stack.ready")
    assert ready["gateway_version"] == "1.22.1"
    assert "max_fails=1 fail_timeout=2s" in ready["gateway_config"]
    changes = health_changes(events, "chat[0]")
    assert [healthy for healthy, _ in changes] == [True, False, True], changes
    assert changes[1][1] == "temporarily disabled (max_fails reached)"  # from nginx's error log
    assert changes[2][1].startswith("answered again")                   # from its access log
    assert addressed(events) == {info["gateway_address"] for info in ready["endpoints"]["replicas"].values()}


@pytest.mark.integration
def test_nginx_runs_its_tls_expired(tmp_path: Path) -> None:
    require_components("nginx")
    _, events = run_passes(COMPARE / "tls-expired-nginx.yaml", tmp_path)
    ready = next(e for e in events if e["type"] == "stack.ready")
    assert "proxy_ssl_verify on;" in ready["gateway_config"]
    assert [healthy for healthy, _ in health_changes(events, "chat[0]")] == [True, False, True]
    errors = (tmp_path / "tls-expired-nginx" / "nginx" / "error.log").read_text()
    assert "certificate has expired" in errors and "upstream server temporarily disabled" in errors


@pytest.mark.integration
def test_nginx_all_down_answer(tmp_path: Path) -> None:
    require_components("nginx")
    _, events = run_passes(COMPARE / "all-down-nginx.yaml", tmp_path)
    bodies = [e.get("body", "") for e in events if e["type"] == "request" and e["status"] == 502]
    assert bodies and all("<center><h1>502 Bad Gateway</h1></center>" in body for body in bodies)
    run_dir = tmp_path / "all-down-nginx"
    assert "no live upstreams" in (run_dir / "nginx" / "error.log").read_text()
