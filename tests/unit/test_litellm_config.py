"""The LiteLLM proxy config rendered from a scenario's gateway block, what it cannot honour, its view of health."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.errors import ScenarioError
from harness.gateways import GATEWAYS, not_applicable
from harness.gateways.base import UPSTREAM_HEADER, UpstreamAddress
from harness.gateways.litellm import (
    CLI_ENV,
    MODEL_NAME,
    PROXY_ENV,
    PROBE_MODULE,
    LitellmGateway,
    host_health_of,
    litellm_binary,
)
from harness.scenario import Gateway, parse_scenario


def upstreams() -> list[UpstreamAddress]:
    return [UpstreamAddress("chat", f"chat[{i}]", "127.0.0.1", 21000 + i) for i in range(3)]


def render(gateway: dict[str, Any]) -> dict[str, Any]:
    adapter = LitellmGateway(Gateway.model_validate({"kind": "litellm", **gateway}), listen_port=10000,
                             admin_port=10001, load_pool="chat")
    return adapter.config(upstreams())


def scenario_text(gateway: str, extra: str = "") -> str:
    """A scenario whose gateway block is ``gateway`` (YAML lines, unindented); ``extra``: more expect items."""
    block = "\n".join(f"  {line}" for line in gateway.splitlines())
    return (f"name: t\ngateway:\n{block}\nupstreams:\n  - {{name: chat, kind: openai, replicas: 3}}\n"
            "load: {users: 2, duration: 10s}\nfaults:\n"
            '  - {kind: reset_peer, target: "chat[0]", at: 2s, for: 3s}\n'
            'expect:\n  - {kind: upstream_unhealthy, target: "chat[0]", within: 3s}\n' + (f"{extra}\n" if extra else ""))


def test_registered_as_a_gateway_kind() -> None:
    assert GATEWAYS["litellm"] is LitellmGateway


def test_every_replica_is_a_deployment_of_the_model_the_load_asks_for() -> None:
    config = render({})
    assert [d["model_name"] for d in config["model_list"]] == [MODEL_NAME] * 3
    assert [d["litellm_params"]["api_base"] for d in config["model_list"]] == [
        "http://127.0.0.1:21000/v1", "http://127.0.0.1:21001/v1", "http://127.0.0.1:21002/v1"]
    assert [d["model_info"]["id"] for d in config["model_list"]] == ["chat-0", "chat-1", "chat-2"]
    # The OpenAI SDK inside LiteLLM must not retry on its own: retries are the router's (num_retries).
    assert {d["litellm_params"]["max_retries"] for d in config["model_list"]} == {0}


def test_health_check_maps_to_background_checks_that_steer_routing() -> None:
    config = render({"health_check": {"interval": "2s", "timeout": "750ms"}})
    general = config["general_settings"]
    assert general["background_health_checks"] is True
    assert general["health_check_interval"] == 2 and isinstance(general["health_check_interval"], int)
    assert general["enable_health_check_routing"] is True
    assert {d["model_info"]["health_check_timeout"] for d in config["model_list"]} == {0.75}


def test_no_health_check_means_no_background_checks() -> None:
    config = render({"health_check": None})
    assert "background_health_checks" not in config["general_settings"]
    assert {"health_check_timeout"} & set(config["model_list"][0]["model_info"]) == set()


def test_outlier_detection_maps_to_the_cooldown() -> None:
    router = render({"outlier_detection": {"consecutive_5xx": 3, "base_ejection_time": "7s"}})["router_settings"]
    assert router["allowed_fails"] == 2   # cools down on the 3rd failure
    assert router["cooldown_time"] == 7.0
    assert "disable_cooldowns" not in router


def test_without_outlier_detection_cooldowns_are_off() -> None:
    router = render({"outlier_detection": None})["router_settings"]
    assert router["disable_cooldowns"] is True
    assert "allowed_fails" not in router


def test_retries_and_timeout() -> None:
    router = render({"retries": {"num_retries": 2}, "request_timeout": "4s"})["router_settings"]
    assert router["num_retries"] == 2 and router["timeout"] == 4.0
    router = render({"request_timeout": 0})["router_settings"]
    assert router["num_retries"] == 0 and "timeout" not in router


def test_per_gateway_block() -> None:
    config = render({"health_check": {"interval": "1s"}, "litellm": {"health_check_routing": False,
                                                                      "health_check_staleness": 5}})
    assert config["general_settings"]["enable_health_check_routing"] is False
    assert config["general_settings"]["health_check_staleness_threshold"] == 5


def test_stays_on_the_machine() -> None:
    config = render({})
    assert config["litellm_settings"]["telemetry"] is False
    assert config["litellm_settings"]["callbacks"] == [f"{PROBE_MODULE}.probe"]
    hosts = {d["litellm_params"]["api_base"].split("/")[2].split(":")[0] for d in config["model_list"]}
    assert hosts == {"127.0.0.1"}
    adapter = LitellmGateway(Gateway.model_validate({"kind": "litellm"}), 10000, 10001, "chat")
    argv = adapter.argv(Path("/run/litellm.yaml"))
    assert "LITELLM_LOCAL_MODEL_COST_MAP=True" in argv and PROXY_ENV["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and argv[argv.index("--port") + 1] == "10000"


def test_the_proxy_does_not_inherit_its_command_line_from_the_environment() -> None:
    """LiteLLM's CLI reads e.g. MAX_REQUESTS_BEFORE_RESTART from the environment: with one worker, uvicorn would
    exit after that many requests. The adapter unsets every such variable (the list is its CLI's envvars)."""
    adapter = LitellmGateway(Gateway.model_validate({"kind": "litellm"}), 10000, 10001, "chat")
    argv = adapter.argv(Path("/run/litellm.yaml"))
    unset = {arg.removeprefix("--unset=") for arg in argv[:argv.index(litellm_binary())] if arg.startswith("--unset=")}
    assert unset == set(CLI_ENV) and {"MAX_REQUESTS_BEFORE_RESTART", "LIMIT_CONCURRENCY", "DEBUG"} <= unset
    assert "PYTHONFAULTHANDLER=1" in argv  # a crash of the proxy leaves its tracebacks in its log
    spec = importlib.util.find_spec("litellm")  # its CLI's source, without importing the proxy (seconds)
    assert spec is not None and spec.origin is not None, "litellm is not installed (the project's litellm extra)"
    cli = (Path(spec.origin).parent / "proxy" / "proxy_cli.py").read_text()
    declared = set(re.findall(r'envvar="([A-Z_]+)"', cli))
    assert "PORT" in declared and declared <= unset, f"LiteLLM's CLI reads more variables than the adapter unsets: {declared - unset}"


def test_write_config_puts_the_probe_beside_it(tmp_path: Path) -> None:
    adapter = LitellmGateway(Gateway.model_validate({"kind": "litellm"}), 10000, 10001, "chat")
    path = adapter.write_config(upstreams(), tmp_path)
    assert path.name == "litellm.yaml"
    assert yaml.safe_load(path.read_text())["model_list"][0]["model_name"] == MODEL_NAME
    probe = (tmp_path / f"{PROBE_MODULE}.py").read_text()
    assert "/chaosgate/deployments" in probe
    # The probe runs inside the proxy and imports nothing from the harness: it spells the seam's header itself.
    assert f'UPSTREAM_HEADER = "{UPSTREAM_HEADER}"' in probe


def test_a_fractional_health_check_interval_is_refused_at_its_line() -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(scenario_text("kind: litellm\nhealth_check: {interval: 1500ms}"), "s.yaml")
    message = str(caught.value)
    assert "s.yaml:4:18: gateway.health_check.interval" in message and "whole number of seconds" in message


def test_mcp_pools_are_refused() -> None:
    text = scenario_text("kind: litellm").replace(
        "  - {name: chat, kind: openai, replicas: 3}", "  - {name: chat, kind: openai, replicas: 3}\n  - {name: tools, kind: mcp}")
    with pytest.raises(ScenarioError, match="OpenAI API only"):
        parse_scenario(text, "s.yaml")


def test_settings_it_cannot_honour_are_listed_as_not_applicable() -> None:
    scenario = parse_scenario(scenario_text(
        "kind: litellm\nhealth_check: {path: /health, unhealthy_threshold: 3}\n"
        "outlier_detection: {consecutive_5xx: 2}\nretries: {num_retries: 1}"), "s.yaml")
    notes = not_applicable(scenario)
    fields = {note.split(":")[0] for note in notes}
    assert {"gateway.health_check.path", "gateway.health_check.unhealthy_threshold",
            "gateway.outlier_detection.max_ejection_percent", "gateway.panic_threshold",
            "gateway.connect_timeout", "gateway.retries.retry_on"} <= fields
    assert all("not applicable to litellm" in note for note in notes)


def test_the_gateway_override_checks_the_file_against_litellm() -> None:
    text = scenario_text("kind: envoy\nhealth_check: {interval: 1s}\npanic_threshold: 0")
    assert parse_scenario(text, "s.yaml", "litellm").gateway.kind == "litellm"


@pytest.mark.parametrize(("deployment", "healthy", "flags"), [
    ({"cooldown": False, "health_check": "healthy"}, True, "healthy"),
    ({"cooldown": False, "health_check": None}, True, "healthy"),
    ({"cooldown": True, "cooldown_status": "500", "health_check": "healthy"}, False, "cooldown(500)"),
    ({"cooldown": True, "cooldown_status": "None", "health_check": None}, False, "cooldown"),
    ({"cooldown": False, "health_check": "unhealthy"}, False, "health_check_failed"),
    ({"cooldown": True, "cooldown_status": "429", "health_check": "unhealthy"}, False,
     "cooldown(429)/health_check_failed"),
])
def test_view_of_one_deployment(deployment: dict[str, Any], healthy: bool, flags: str) -> None:
    health = host_health_of(deployment)
    assert (health.healthy, health.flags) == (healthy, flags)


def test_the_view_of_a_deployment_that_failed_its_check_carries_the_proxy_s_error() -> None:
    error = "litellm.APIConnectionError: Connection reset by peer"
    failed = host_health_of({"cooldown": False, "health_check": "unhealthy", "health_error": error})
    assert failed.flags == "health_check_failed" and failed.detail == f"health check: {error}"
    assert host_health_of({"cooldown": False, "health_check": "healthy", "health_error": None}).detail == ""
