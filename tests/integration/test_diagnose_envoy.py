"""`chaosgate diagnose` against an Envoy it did not start: Envoy is started by hand from a plain
config file (written out below, not rendered by chaosgate) in front of one fake replica; diagnose
reads it through --envoy-admin and through --config. Also the `diagnosis` expectation in a run."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from harness.gateways.envoy import envoy_binary
from harness.processes import free_port
from tests.integration.conftest import chaosgate, wait_for

pytestmark = pytest.mark.integration

# interval/timeout/thresholds: the gateway marks a failing host within 2 × 0.5 s
CONFIG = """\
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}
static_resources:
  clusters:
  - name: models
    type: STATIC
    connect_timeout: 0.5s
    load_assignment:
      cluster_name: models
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {replica}}}}}}}}}]}}]
    health_checks:
    - {{timeout: 0.3s, interval: 0.5s, no_traffic_interval: 0.5s, unhealthy_threshold: 1, healthy_threshold: 1,
       http_health_check: {{path: /health}}}}
  - name: typo
    type: STATIC
    connect_timeout: 0.5s
    load_assignment:
      cluster_name: typo
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {replica}}}}}}}}}]}}]
    health_checks:
    - {{timeout: 0.3s, interval: 0.5s, no_traffic_interval: 0.5s, unhealthy_threshold: 1, healthy_threshold: 1,
       http_health_check: {{path: /helth}}}}
  - name: gone
    type: STATIC
    connect_timeout: 0.5s
    load_assignment:
      cluster_name: gone
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {closed}}}}}}}}}]}}]
    health_checks:
    - {{timeout: 0.3s, interval: 0.5s, no_traffic_interval: 0.5s, unhealthy_threshold: 1, healthy_threshold: 1,
       http_health_check: {{path: /health}}}}
"""
MARK_WITHIN_S = 2 * 0.5 + 0.3 + 5.0  # two intervals and a timeout, with margin for a loaded machine


@dataclass
class HandStarted:
    admin: str
    config: Path
    replica: int
    closed: int


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def envoy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HandStarted]:
    work = tmp_path_factory.mktemp("hand-envoy")
    admin, replica, closed = free_port(), free_port(), free_port()
    config = work / "envoy.yaml"
    config.write_text(CONFIG.format(admin=admin, replica=replica, closed=closed))
    logs = (work / "replica.log").open("w"), (work / "envoy.log").open("w")
    fake = subprocess.Popen([sys.executable, "-m", "fakes.llm", "--name", "m", "--port", str(replica), "--seed", "1"],
                            stdout=logs[0], stderr=subprocess.STDOUT)
    proxy = subprocess.Popen([envoy_binary(), "-c", str(config), "--concurrency", "1", "--disable-hot-restart",
                              "--base-id", str(admin), "--log-level", "warn"], stdout=logs[1], stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{admin}"
        wait_for(lambda: _ok(f"{url}/ready") and _ok(f"http://127.0.0.1:{replica}/health"), 30, "envoy and the replica")

        def marked() -> bool:
            statuses = httpx.get(f"{url}/clusters", params={"format": "json"}, timeout=1).json()["cluster_statuses"]
            flags = {c["name"]: c["host_statuses"][0].get("health_status", {}) for c in statuses}
            return bool(flags.get("typo", {}).get("failed_active_health_check")
                        and flags.get("gone", {}).get("failed_active_health_check")
                        and not flags.get("models", {}).get("failed_active_health_check"))
        wait_for(marked, MARK_WITHIN_S, "envoy to mark typo and gone unhealthy and models healthy")
        yield HandStarted(url, config, replica, closed)
    finally:
        for process in (proxy, fake):
            process.terminate()
        for process in (proxy, fake):
            process.wait(10)
        for log in logs:
            log.close()


def _by_cluster(output: str) -> dict[str, dict[str, object]]:
    return {h["cluster"]: h for h in json.loads(output)["hosts"]}


def test_admin_api_gives_flags_and_causes(envoy: HandStarted) -> None:
    result = chaosgate("diagnose", "--envoy-admin", envoy.admin, "--json", timeout=60)
    assert result.returncode == 1, result.stderr
    hosts = _by_cluster(result.stdout)
    assert hosts["models"]["verdict"] == "healthy" and hosts["models"]["gateway_healthy"] is True
    assert hosts["typo"]["cause"] == "health_check_misconfigured" and hosts["typo"]["failing_layer"] == "http_health"
    assert "failed_active_health_check" in hosts["typo"]["flags"]  # type: ignore[operator]
    assert "GET /helth → 404" in str(hosts["typo"]["evidence"])
    assert hosts["gone"]["cause"] == "connection_refused" and hosts["gone"]["failing_layer"] == "tcp"
    assert "Misconfigured Health Check" in str(hosts["typo"]["table1"])


def test_readable_table(envoy: HandStarted) -> None:
    result = chaosgate("diagnose", "--envoy-admin", envoy.admin, "--all", timeout=60)
    assert result.returncode == 1, result.stderr
    assert "typo/127.0.0.1" in result.stdout and "health_check_misconfigured" in result.stdout
    assert "next:" in result.stdout and "3 hosts, 2 unhealthy" in result.stdout


def test_config_file_walks_every_host(envoy: HandStarted) -> None:
    result = chaosgate("diagnose", "--config", str(envoy.config), "--json", timeout=60)
    assert result.returncode == 1, result.stderr
    hosts = _by_cluster(result.stdout)
    assert all(h["gateway_healthy"] is None for h in hosts.values())
    assert hosts["models"]["verdict"] == "passes" and hosts["models"]["cause"] is None
    assert [layer["layer"] for layer in hosts["models"]["layers"]] == [  # type: ignore[union-attr]
        "tcp", "http_health", "protocol", "inference"]
    assert hosts["typo"]["cause"] == "health_check_misconfigured"
    assert hosts["gone"]["cause"] == "connection_refused"


def test_healthy_cluster_alone_exits_zero(envoy: HandStarted) -> None:
    result = chaosgate("diagnose", "--envoy-admin", envoy.admin, "--cluster", "models", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 hosts, 0 unhealthy" in result.stdout


def test_unreachable_admin_is_exit_2() -> None:
    result = chaosgate("diagnose", "--envoy-admin", f"http://127.0.0.1:{free_port()}", timeout=60)
    assert result.returncode == 2 and "did not answer" in result.stderr


SCENARIO = """\
name: diagnose-expectation
gateway:
  health_check: {path: /health, interval: 0.5s, timeout: 0.3s, unhealthy_threshold: 2, healthy_threshold: 1,
                 no_traffic_interval: 0.5s}
  panic_threshold: 0
  retries: {retry_on: [connect-failure, reset], num_retries: 2}
upstreams:
  - {name: chat, kind: openai, replicas: 2}
  - {name: tools, kind: mcp, replicas: 1}
load: {users: 2, duration: 8s}
faults:
  - {kind: down, target: "chat[0]", at: 1s, for: 5s}
  - {kind: mcp_fault, mode: missing_server_info, target: "tools[0]", at: 1s, for: 5s}
expect:
  - {kind: diagnosis, target: "chat[0]", cause: connection_refused}
  - {kind: diagnosis, target: "tools[0]", cause: mcp_schema_mismatch, after: 1s}
  - {kind: diagnosis, target: "chat[0]", cause: tls_expired, after: 2s}
"""


def test_diagnosis_expectation_in_a_run(tmp_path: Path) -> None:
    scenario = tmp_path / "diagnose.yaml"
    scenario.write_text(SCENARIO)
    result = chaosgate("run", str(scenario), "--out", str(tmp_path / "out"), "-q", timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr  # the third expectation is wrong on purpose
    summary = json.loads((tmp_path / "out" / "diagnose-expectation" / "summary.json").read_text())
    verdicts = [(v["params"]["cause"], v["passed"], v["measured"]) for v in summary["expectations"]]
    assert verdicts == [("connection_refused", True, "connection_refused"),
                        ("mcp_schema_mismatch", True, "mcp_schema_mismatch"),
                        ("tls_expired", False, "connection_refused")]
    events = [json.loads(line) for line in (tmp_path / "out" / "diagnose-expectation" / "journal.jsonl").open()]
    diagnoses = [e for e in events if e["type"] == "diagnosis"]
    assert len(diagnoses) == 3 and all(e["layers"] for e in diagnoses)
