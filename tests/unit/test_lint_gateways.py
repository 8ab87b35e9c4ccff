"""The lint's HAProxy, nginx and LiteLLM traps: each at its field's line, and only where it bites."""

from __future__ import annotations

from pathlib import Path

from harness.lint import TRAPS, Finding, lint_text, traps_for

TRAP_IDS = {t.id for t in TRAPS}


def traps_only(findings: list[Finding]) -> list[Finding]:
    """The traps' findings (the checks of the scenario itself: tests/unit/test_lint_checks.py)."""
    return [f for f in findings if f.trap in TRAP_IDS]
from harness.scenario import load_scenario, parse_scenario


def lint(gateway: str, fault: str = '{kind: down, target: "chat[0]", at: 30s, for: 5s}', replicas: int = 3,
         override: str | None = None) -> list[Finding]:
    source = ("name: t\n"
              f"gateway: {gateway}\n"
              f"upstreams:\n  - {{name: chat, replicas: {replicas}}}\n"
              "load: {duration: 40s}\n"
              f"faults:\n  - {fault}\n")
    return traps_only(lint_text(parse_scenario(source, "x.yaml", override), source, "x.yaml"))


def ids(findings: list[Finding]) -> list[str]:
    return [f.trap for f in findings]


def test_traps_apply_only_to_their_gateway() -> None:
    assert {t.id for t in traps_for("haproxy")} == {"haproxy.startup-state", "haproxy.observe-retries"}
    assert {t.id for t in traps_for("nginx")} == {"nginx.single-server", "nginx.worker-state"}
    assert {t.id for t in traps_for("litellm")} == {"litellm.no-health", "litellm.health-endpoint",
                                                   "litellm.health-filter-bypass", "litellm.check-routing-off"}
    # The same scenario, linted as Envoy: Envoy's traps, not nginx's single server.
    assert ids(lint("{panic_threshold: 0, health_check: {no_traffic_interval: 1s}}", replicas=1)) == []


HAPROXY = "{kind: haproxy, panic_threshold: 0, health_check: {interval: 2s}}"


def test_haproxy_startup_state_for_a_fault_before_the_first_checks() -> None:
    (finding,) = lint(HAPROXY, '{kind: down, target: "chat[0]", at: 1s, for: 5s}')
    assert finding.trap == "haproxy.startup-state" and finding.field == "faults[0].at"
    assert (finding.line, finding.column) == (7, 37)  # the `at` key of the fault
    assert "health = rise" in finding.message and "not fall 2" in finding.message
    assert ids(lint(HAPROXY, '{kind: down, target: "chat[0]", at: 12s, for: 5s}')) == []
    assert ids(lint("{kind: haproxy, panic_threshold: 0, health_check: null}",
                    '{kind: down, target: "chat[0]", at: 1s, for: 5s}')) == []


NGINX = "{kind: nginx, panic_threshold: 0, health_check: null, outlier_detection: {consecutive_5xx: 1}"


def test_nginx_single_server_that_a_fault_targets() -> None:
    (finding,) = lint(NGINX + "}", replicas=1)
    assert finding.trap == "nginx.single-server" and finding.field == "upstreams[0].replicas"
    assert finding.line == 4 and "never marked down" in finding.message
    assert ids(lint(NGINX + "}", replicas=2)) == []


def test_nginx_worker_state_without_a_shared_zone() -> None:
    (finding,) = lint(NGINX + ", nginx: {worker_processes: 2, shared_zone: false}}")
    assert finding.trap == "nginx.worker-state" and finding.field == "gateway.nginx.shared_zone"
    assert finding.message.startswith("is false with worker_processes 2")
    assert ids(lint(NGINX + ", nginx: {worker_processes: 2}}")) == []  # shared_zone defaults to true
    assert ids(lint(NGINX + ", nginx: {worker_processes: 1, shared_zone: false}}")) == []


def test_nginx_worker_state_in_its_trap_scenario() -> None:
    """Named at the `shared_zone: false` line of scenarios/traps/nginx-worker-state.yaml, and gone with the fix."""
    path = Path(__file__).resolve().parents[2] / "scenarios" / "traps" / "nginx-worker-state.yaml"
    source = path.read_text()
    (finding,) = lint_text(load_scenario(path), source, str(path))
    assert finding.trap == "nginx.worker-state" and finding.field == "gateway.nginx.shared_zone"
    assert source.splitlines()[finding.line - 1].strip().startswith("shared_zone: false")
    fixed = source.replace("shared_zone: false", "shared_zone: true")
    assert lint_text(parse_scenario(fixed, str(path)), fixed, str(path)) == []


LITELLM = "{kind: litellm, panic_threshold: 0, health_check: null, outlier_detection: {consecutive_5xx: 2}}"


def test_litellm_without_any_health_mechanism() -> None:
    source_expect = '{kind: upstream_unhealthy, target: "chat[0]", within: 5s}'
    found = lint_expect("{kind: litellm, panic_threshold: 0, health_check: null}", source_expect)
    (finding,) = found
    assert finding.trap == "litellm.no-health" and finding.severity == "error" and finding.field == "gateway"
    assert "never takes a deployment out of rotation" in finding.message
    assert ids(lint_expect(LITELLM, source_expect)) == []


def test_litellm_health_endpoint_fault_and_health_filter_bypass() -> None:
    health_fail = '{kind: llm_fault, mode: health_fail, target: "chat[0]", at: 30s, for: 5s}'
    (finding,) = lint(LITELLM, health_fail)
    assert finding.trap == "litellm.health-endpoint" and finding.field == "faults[0].mode"
    assert "never sees this fault" in finding.message
    checks_only = "{kind: litellm, panic_threshold: 0, health_check: {interval: 2s}}"
    (bypass,) = lint_expect(checks_only, "{kind: all_down_response, within: 5s}")
    assert bypass.trap == "litellm.health-filter-bypass" and "bypasses its health filter" in bypass.message
    assert ids(lint_expect(LITELLM.replace("health_check: null", "health_check: {interval: 2s}"),
                           "{kind: all_down_response, within: 5s}")) == []


def lint_expect(gateway: str, expect: str) -> list[Finding]:
    source = ("name: t\n"
              f"gateway: {gateway}\n"
              "upstreams:\n  - {name: chat, replicas: 3}\n"
              "load: {duration: 40s}\n"
              'faults:\n  - {kind: down, target: "chat[0]", at: 30s, for: 5s}\n'
              f"expect:\n  - {expect}\n")
    return traps_only(lint_text(parse_scenario(source, "x.yaml"), source, "x.yaml"))


def test_gateway_override_lints_the_chosen_gateway() -> None:
    found = lint("{kind: envoy, panic_threshold: 0, health_check: null, outlier_detection: {consecutive_5xx: 1, "
                 "max_ejection_percent: 100}}", replicas=1, override="nginx")
    assert ids(found) == ["nginx.single-server"]
