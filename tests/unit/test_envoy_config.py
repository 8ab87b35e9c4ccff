"""The Envoy config rendered from a scenario's gateway block (its traps: tests/unit/test_lint_envoy.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from harness.gateways.base import UpstreamAddress
from harness.gateways.envoy import UPSTREAM_HEADER, EnvoyGateway, envoy_binary
from harness.scenario import Gateway

REPO = Path(__file__).resolve().parents[2]

RICH_GATEWAY: dict[str, Any] = {
    "health_check": {"path": "/healthz", "interval": "1s", "timeout": "250ms", "unhealthy_threshold": 3,
                     "healthy_threshold": 1, "expected_statuses": [200, 204], "no_traffic_interval": "2s"},
    "outlier_detection": {"consecutive_5xx": 3, "consecutive_gateway_failure": 4, "interval": "1s",
                          "base_ejection_time": "30s", "max_ejection_percent": 50},
    "panic_threshold": 0,
    "connect_timeout": "750ms",
    "request_timeout": "5s",
    "retries": {"num_retries": 2, "retry_on": ["connect-failure", "reset", "gateway-error"], "per_try_timeout": "400ms"},
    "envoy": {"update_merge_window": "1s"},
}


def upstreams() -> list[UpstreamAddress]:
    return ([UpstreamAddress("chat", f"chat[{i}]", "127.0.0.1", 21000 + i) for i in range(3)]
            + [UpstreamAddress("embed", f"embed[{i}]", "127.0.0.2", 22000 + i) for i in range(2)])


def render(gateway: dict[str, Any], tmp_path: Path, load_pool: str = "chat") -> dict[str, Any]:
    gw = EnvoyGateway(Gateway.model_validate(gateway), listen_port=10000, admin_port=10001, load_pool=load_pool)
    return gw.config(upstreams(), tmp_path)


def clusters(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in config["static_resources"]["clusters"]}


def routes(config: dict[str, Any]) -> list[dict[str, Any]]:
    (listener,) = config["static_resources"]["listeners"]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    (vhost,) = hcm["route_config"]["virtual_hosts"]
    return vhost["routes"]


# -- the config ---------------------------------------------------------------------------

def test_listener_and_admin_ports(tmp_path: Path) -> None:
    config = render({}, tmp_path)
    assert config["admin"]["address"] == {"socket_address": {"address": "127.0.0.1", "port_value": 10001}}
    (listener,) = config["static_resources"]["listeners"]
    assert listener["address"] == {"socket_address": {"address": "127.0.0.1", "port_value": 10000}}


def test_health_check(tmp_path: Path) -> None:
    (hc,) = clusters(render(RICH_GATEWAY, tmp_path))["chat"]["health_checks"]
    assert hc["interval"] == "1.000s"
    assert hc["timeout"] == "0.250s"
    assert hc["no_traffic_interval"] == "2.000s"
    assert (hc["unhealthy_threshold"], hc["healthy_threshold"]) == (3, 1)
    assert hc["http_health_check"] == {"path": "/healthz", "expected_statuses": [
        {"start": 200, "end": 201}, {"start": 204, "end": 205}]}
    assert hc["event_logger"][0]["typed_config"]["event_log_path"] == str(tmp_path / "envoy-health.jsonl")


def test_default_health_check(tmp_path: Path) -> None:
    (hc,) = clusters(render({}, tmp_path))["chat"]["health_checks"]
    assert (hc["interval"], hc["timeout"], hc["no_traffic_interval"]) == ("1.000s", "0.500s", "60.000s")
    assert hc["http_health_check"]["expected_statuses"] == [{"start": 200, "end": 201}]


def test_health_check_off(tmp_path: Path) -> None:
    assert all("health_checks" not in c for c in clusters(render({"health_check": None}, tmp_path)).values())


def test_panic_threshold_and_merge_window(tmp_path: Path) -> None:
    for value in (0, 35.5):
        lb = clusters(render({"panic_threshold": value}, tmp_path))["chat"]["common_lb_config"]
        assert lb == {"healthy_panic_threshold": {"value": value}, "update_merge_window": "0s"}


def test_merge_window_from_the_envoy_block(tmp_path: Path) -> None:
    by_name = clusters(render({"envoy": {"update_merge_window": "1s"}}, tmp_path))
    assert {c["common_lb_config"]["update_merge_window"] for c in by_name.values()} == {"1s"}
    assert Gateway.model_validate({"envoy": {"update_merge_window": "250ms"}}).envoy.update_merge_window == 0.25
    assert Gateway().envoy.update_merge_window == 0  # chaosgate's default keeps the admin view and routing in step
    for bad in ({"update_merge_window": "-1s"}, {"update_merge_window": "2m"}, {"merge_window": "1s"}):
        with pytest.raises(ValidationError):
            Gateway.model_validate({"envoy": bad})


def test_cluster_endpoints_and_timeouts(tmp_path: Path) -> None:
    by_name = clusters(render(RICH_GATEWAY, tmp_path))
    assert list(by_name) == ["chat", "embed"]
    chat = by_name["chat"]
    assert (chat["type"], chat["lb_policy"], chat["connect_timeout"]) == ("STATIC", "ROUND_ROBIN", "0.750s")
    endpoints = chat["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert [e["endpoint"]["address"]["socket_address"] for e in endpoints] == [
        {"address": "127.0.0.1", "port_value": 21000 + i} for i in range(3)]
    embed_endpoints = by_name["embed"]["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert [e["endpoint"]["address"]["socket_address"]["address"] for e in embed_endpoints] == ["127.0.0.2"] * 2


def test_outlier_detection_is_enforced(tmp_path: Path) -> None:
    od = clusters(render(RICH_GATEWAY, tmp_path))["chat"]["outlier_detection"]
    assert od == {
        "interval": "1.000s", "base_ejection_time": "30.000s", "max_ejection_percent": 50,
        "consecutive_5xx": 3, "enforcing_consecutive_5xx": 100,
        "consecutive_gateway_failure": 4, "enforcing_consecutive_gateway_failure": 100,
    }


def test_outlier_detection_without_5xx_rule(tmp_path: Path) -> None:
    od = clusters(render({"outlier_detection": {"consecutive_5xx": None}}, tmp_path))["chat"]["outlier_detection"]
    assert (od["consecutive_5xx"], od["enforcing_consecutive_5xx"]) == (0, 0)
    assert "consecutive_gateway_failure" not in od and "enforcing_consecutive_gateway_failure" not in od


def test_outlier_detection_off_by_default(tmp_path: Path) -> None:
    assert "outlier_detection" not in clusters(render({}, tmp_path))["chat"]


def test_a_route_per_pool_plus_a_catch_all_to_the_load_pool(tmp_path: Path) -> None:
    rs = routes(render({"request_timeout": "5s"}, tmp_path, load_pool="embed"))
    assert [(r["match"]["prefix"], r["route"]["cluster"], r["route"].get("prefix_rewrite")) for r in rs] == [
        ("/chat/", "chat", "/"), ("/embed/", "embed", "/"), ("/", "embed", None)]
    assert {r["route"]["timeout"] for r in rs} == {"5.000s"}
    for r in rs:  # every reply says which replica the gateway picked, also the gateway's own errors
        assert r["response_headers_to_add"] == [{"header": {"key": UPSTREAM_HEADER, "value": "%UPSTREAM_HOST%"},
                                                 "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]
    assert all("retry_policy" not in r["route"] for r in rs)


def test_retries_retry_on_another_replica(tmp_path: Path) -> None:
    for route in routes(render(RICH_GATEWAY, tmp_path)):
        policy = route["route"]["retry_policy"]
        assert policy["retry_on"] == "connect-failure,reset,gateway-error"
        assert policy["num_retries"] == 2
        assert policy["per_try_timeout"] == "0.400s"
        (predicate,) = policy["retry_host_predicate"]
        assert predicate["name"] == "envoy.retry_host_predicates.previous_hosts"
        assert predicate["typed_config"]["@type"].endswith("PreviousHostsPredicate")
        assert policy["host_selection_retry_max_attempts"] >= 1


def test_retries_without_per_try_timeout(tmp_path: Path) -> None:
    policy = routes(render({"retries": {}}, tmp_path))[0]["route"]["retry_policy"]
    assert policy["retry_on"] == "connect-failure,reset"
    assert policy["num_retries"] == 1
    assert "per_try_timeout" not in policy


def test_write_config_round_trips_through_yaml(tmp_path: Path) -> None:
    gw = EnvoyGateway(Gateway.model_validate(RICH_GATEWAY), 10000, 10001, "chat")
    path = gw.write_config(upstreams(), tmp_path)
    assert path == tmp_path / "envoy.yaml"
    assert yaml.safe_load(path.read_text()) == gw.config(upstreams(), tmp_path)


# -- Envoy itself accepts the config ---------------------------------------------------------

@pytest.mark.parametrize("gateway", [RICH_GATEWAY, {}, {"health_check": None, "retries": {}}],
                         ids=["rich", "defaults", "no-health-check"])
def test_envoy_validates_the_config(gateway: dict[str, Any], tmp_path: Path) -> None:
    gw = EnvoyGateway(Gateway.model_validate(gateway), 10000, 10001, "chat")
    path = gw.write_config(upstreams(), tmp_path)
    result = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(path), "--log-level", "error"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout + result.stderr


@pytest.mark.parametrize("gateway", [
    {"health_check": {"interval": 0}},
    {"health_check": {"timeout": 0}},
    {"health_check": {"no_traffic_interval": 0}},
    {"health_check": {"expected_statuses": [99]}},
    {"health_check": {"expected_statuses": [600]}},
    {"outlier_detection": {"interval": 0}},
    {"outlier_detection": {"base_ejection_time": 0}},
    {"envoy": {"update_merge_window": "60s"}},
    {"envoy": {"update_merge_window": "1ms"}},
], ids=["hc-interval-0", "hc-timeout-0", "hc-no-traffic-interval-0", "status-99", "status-600",
        "od-interval-0", "od-base-ejection-0", "merge-window-60s", "merge-window-1ms"])
def test_what_the_scenario_model_accepts_envoy_accepts(gateway: dict[str, Any], tmp_path: Path) -> None:
    # A value Envoy refuses must be caught when the scenario is validated (file, line, field),
    # not when Envoy fails to start in the middle of a run.
    try:
        settings = Gateway.model_validate(gateway)
    except ValidationError:
        return  # rejected up front: that is the point
    path = EnvoyGateway(settings, 10000, 10001, "chat").write_config(upstreams(), tmp_path)
    result = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(path), "--log-level", "critical"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, f"the scenario model accepts {gateway}, Envoy does not: {result.stderr[-400:]}"
