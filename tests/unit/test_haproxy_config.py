"""The HAProxy config rendered from a scenario's gateway block, its field mapping and its traps."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.errors import ComponentMissing, ScenarioError, StackError
from harness.gateways import GATEWAYS, traps
from harness.gateways.base import UPSTREAM_HEADER, UpstreamAddress, UpstreamTlsTrust
from harness.gateways.haproxy import HaproxyGateway, haproxy_binary
from harness.scenario import Gateway, load_scenario, parse_scenario
from tests.missing import missing

REPO = Path(__file__).resolve().parents[2]

RICH_GATEWAY: dict[str, Any] = {
    "kind": "haproxy",
    "health_check": {"path": "/healthz", "interval": "1s", "timeout": "250ms", "unhealthy_threshold": 3,
                     "healthy_threshold": 1, "expected_statuses": [200, 204]},
    "outlier_detection": {"consecutive_5xx": 3},
    "panic_threshold": 0,
    "connect_timeout": "750ms",
    "request_timeout": "5s",
    "retries": {"num_retries": 2, "retry_on": ["connect-failure", "reset", "gateway-error"]},
    "haproxy": {"fastinter": "200ms", "downinter": "2s", "spread_checks": 5},
}


def upstreams() -> list[UpstreamAddress]:
    return ([UpstreamAddress("chat", f"chat[{i}]", "127.0.0.1", 21000 + i) for i in range(3)]
            + [UpstreamAddress("embed", f"embed[{i}]", "127.0.0.2", 22000 + i) for i in range(2)])


def render(gateway: dict[str, Any], tmp_path: Path) -> str:
    return HaproxyGateway(Gateway.model_validate(gateway), 10000, 10001, "chat").config(upstreams(), tmp_path)


def section(config: str, header: str) -> list[str]:
    """The lines of one section (``global``, ``defaults``, ``backend chat``, ...), stripped."""
    lines = config.splitlines()
    start = lines.index(header)
    body = []
    for line in lines[start + 1:]:
        if line and not line.startswith(" "):
            break
        if line.strip():
            body.append(line.strip())
    return body


def installed(find: Callable[[], str]) -> str:
    """The binary; outside CI a missing one skips the test, under CI=true it fails it."""
    try:
        return find()
    except ComponentMissing as exc:
        missing(str(exc))


# -- the config ---------------------------------------------------------------------------

def test_registered_and_selectable() -> None:
    assert GATEWAYS["haproxy"] is HaproxyGateway
    assert Gateway.model_validate({"kind": "haproxy"}).kind == "haproxy"


def test_listener_stats_socket_and_upstream_header(tmp_path: Path) -> None:
    config = render({"kind": "haproxy"}, tmp_path)
    assert "stats socket ipv4@127.0.0.1:10001 level admin" in section(config, "global")
    frontend = section(config, "frontend ingress")
    assert "bind 127.0.0.1:10000" in frontend
    assert f'http-after-response set-header {UPSTREAM_HEADER} "%si:%sp"' in frontend
    assert "use_backend embed if { path_beg /embed/ }" in frontend
    assert frontend[-1] == "default_backend chat"


def test_health_check_maps_to_inter_fall_rise(tmp_path: Path) -> None:
    config = render(RICH_GATEWAY, tmp_path)
    chat = section(config, "backend chat")
    assert "option httpchk GET /healthz" in chat
    assert "http-check expect rstatus ^(200|204)$" in chat
    (defaults,) = [line for line in chat if line.startswith("default-server")]
    assert defaults.split()[1:] == ["check", "inter", "1000ms", "fall", "3", "rise", "1", "fastinter", "200ms",
                                    "downinter", "2000ms", "observe", "layer7", "error-limit", "3", "on-error",
                                    "mark-down"]
    assert "timeout check 250ms" in section(config, "defaults")
    assert "spread-checks 5" in section(config, "global")
    assert [line for line in chat if line.startswith("server")] == [
        "server chat-0 127.0.0.1:21000", "server chat-1 127.0.0.1:21001", "server chat-2 127.0.0.1:21002"]


def test_timeouts_and_retries(tmp_path: Path) -> None:
    defaults = section(render(RICH_GATEWAY, tmp_path), "defaults")
    assert "timeout connect 750ms" in defaults
    assert "timeout server 5000ms" in defaults
    assert "retries 2" in defaults
    assert "option redispatch 1" in defaults
    assert "retry-on conn-failure empty-response junk-response 502 503 504" in defaults


def test_no_retries_unless_set(tmp_path: Path) -> None:
    # HAProxy retries 3 times by default; a scenario without retries gets none.
    defaults = section(render({"kind": "haproxy"}, tmp_path), "defaults")
    assert "retries 0" in defaults
    assert not any(line.startswith(("retry-on", "option redispatch")) for line in defaults)


def test_per_try_timeout_is_the_server_timeout(tmp_path: Path) -> None:
    defaults = section(render({"kind": "haproxy", "retries": {"per_try_timeout": "400ms"}}, tmp_path), "defaults")
    assert "timeout server 400ms" in defaults
    assert "retry-on conn-failure empty-response junk-response response-timeout" in defaults


def test_health_check_off(tmp_path: Path) -> None:
    config = render({"kind": "haproxy", "health_check": None}, tmp_path)
    assert "option httpchk" not in config
    assert "check" not in " ".join(section(config, "backend chat"))


def test_tls_replicas(tmp_path: Path) -> None:
    trust = UpstreamTlsTrust("/run/tls/ca.pem", "chat.upstream.test")
    tls = [UpstreamAddress("chat", f"chat[{i}]", "127.0.0.1", 21000 + i, tls=trust) for i in range(2)]
    config = HaproxyGateway(Gateway.model_validate({"kind": "haproxy"}), 10000, 10001, "chat").config(tls, tmp_path)
    assert ("server chat-0 127.0.0.1:21000 ssl verify required ca-file /run/tls/ca.pem sni str(chat.upstream.test) "
            "verifyhost chat.upstream.test check-sni chat.upstream.test alpn http/1.1 ssl-min-ver TLSv1.2") in config
    mixed = [*tls, UpstreamAddress("chat", "chat[2]", "127.0.0.1", 21002)]
    with pytest.raises(StackError, match="disagree on TLS"):
        HaproxyGateway(Gateway.model_validate({"kind": "haproxy"}), 10000, 10001, "chat").config(mixed, tmp_path)


def test_write_config(tmp_path: Path) -> None:
    gw = HaproxyGateway(Gateway.model_validate(RICH_GATEWAY), 10000, 10001, "chat")
    path = gw.write_config(upstreams(), tmp_path)
    assert path == tmp_path / "haproxy.cfg"
    assert path.read_text() == gw.config(upstreams(), tmp_path)
    assert gw.admin_url == "tcp://127.0.0.1:10001"


@pytest.mark.parametrize("gateway", [RICH_GATEWAY, {"kind": "haproxy"}, {"kind": "haproxy", "health_check": None,
                                                                          "request_timeout": 0, "retries": {}}],
                         ids=["rich", "defaults", "no-health-check"])
def test_haproxy_accepts_the_config(gateway: dict[str, Any], tmp_path: Path) -> None:
    binary = installed(haproxy_binary)
    path = HaproxyGateway(Gateway.model_validate(gateway), 10000, 10001, "chat").write_config(upstreams(), tmp_path)
    result = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Configuration file is valid" in result.stdout + result.stderr


# -- what HAProxy cannot honour ---------------------------------------------------------------

SCENARIO = """\
name: t
gateway:
  kind: haproxy
{gateway}
upstreams:
  - {{name: chat, replicas: 3}}
load: {{duration: 20s}}
faults:
  - {{kind: reset_peer, target: "chat[0]", at: 5s, for: 5s}}
"""


def problems(gateway: str) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(SCENARIO.format(gateway=gateway), "s.yaml")
    return [str(p) for p in caught.value.problems]


def test_panic_threshold_above_zero_is_an_error_at_its_line() -> None:
    (problem,) = problems("  panic_threshold: 50")
    assert problem.startswith("s.yaml:4:3: gateway.panic_threshold: haproxy cannot honour this: HAProxy has no panic")


def test_gateway_failure_counting_is_an_error() -> None:
    (problem,) = problems("  outlier_detection: {consecutive_gateway_failure: 3}")
    assert problem.startswith("s.yaml:4:")
    assert "gateway.outlier_detection.consecutive_gateway_failure" in problem and "502/503/504" in problem


def test_observe_without_health_checks_is_an_error() -> None:
    (problem,) = problems("  health_check: null\n  outlier_detection: {consecutive_5xx: 3}")
    assert "s.yaml:5:3: gateway.outlier_detection: haproxy cannot honour this: HAProxy's passive checks" in problem


def test_refused_stream_is_an_error() -> None:
    found = problems("  retries: {retry_on: [refused-stream]}")
    assert any("gateway.retries.retry_on" in p and "HTTP/2" in p for p in found)


def test_mcp_sessions_stick_to_their_replica(tmp_path: Path) -> None:
    pools = [UpstreamAddress("chat", "chat[0]", "127.0.0.1", 21000),
             *[UpstreamAddress("tools", f"tools[{i}]", "127.0.0.1", 23000 + i, kind="mcp") for i in range(2)]]
    config = HaproxyGateway(Gateway.model_validate({"kind": "haproxy"}), 10000, 10001, "chat").config(pools, tmp_path)
    tools = section(config, "backend tools")
    assert tools[2:5] == ["stick-table type string len 128 size 100k expire 1h", "stick on req.hdr(mcp-session-id)",
                          "stick store-response res.hdr(mcp-session-id)"]
    assert not any(line.startswith("stick") for line in section(config, "backend chat"))


def test_settings_that_do_not_apply_are_listed_not_dropped() -> None:
    scenario = parse_scenario(SCENARIO.format(gateway="  outlier_detection: {consecutive_5xx: 2}"), "s.yaml")
    notes = traps(scenario)
    assert any(n.startswith("gateway.health_check.no_traffic_interval: not applicable to haproxy") for n in notes)
    assert any(n.startswith("gateway.panic_threshold: not applicable to haproxy") for n in notes)
    assert any(n.startswith("gateway.outlier_detection.base_ejection_time: not applicable to haproxy") for n in notes)


def test_gateway_override_checks_the_file_against_haproxy() -> None:
    scenario = load_scenario(REPO / "scenarios" / "replica-reset.yaml", gateway="haproxy")
    assert scenario.gateway.kind == "haproxy"
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(SCENARIO.format(gateway="  panic_threshold: 50").replace("kind: haproxy", "kind: envoy"),
                       "s.yaml", gateway="haproxy")
    (problem,) = caught.value.problems
    assert problem.line == 4 and "haproxy cannot honour this (--gateway haproxy)" in str(problem)


def test_unknown_gateway_kind_names_the_registered_ones() -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(SCENARIO.format(gateway="").replace("kind: haproxy", "kind: traefik"), "s.yaml")
    (problem,) = caught.value.problems
    assert problem.line == 3
    assert all(f"'{kind}'" in str(problem) for kind in GATEWAYS), str(problem)


def test_docker_runtime_refuses_haproxy_and_nginx() -> None:
    from harness.runtimes.base import unsupported

    for kind in ("haproxy", "nginx"):
        scenario = parse_scenario(f"name: t\ngateway: {{kind: {kind}, health_check: null}}\nupstreams: [{{name: chat}}]\n"
                                  "load: {duration: 5s}\n", "s.yaml")
        assert f"the {kind} gateway runs on the local runtime only" in unsupported(scenario, "docker", frozenset())
        assert unsupported(scenario, "local", frozenset()) == []
