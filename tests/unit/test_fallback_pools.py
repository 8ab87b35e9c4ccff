"""``upstreams[].fallback``: the scenario model's checks (file, line, field), and what the LiteLLM and Envoy
adapters render from it (the Envoy config validated by the real ``envoy --mode validate``)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.errors import ScenarioError
from harness.gateways import GATEWAYS
from harness.gateways.base import UPSTREAM_HEADER, UpstreamAddress
from harness.gateways.envoy import EnvoyGateway, envoy_binary
from harness.gateways.haproxy import HaproxyGateway, haproxy_binary
from harness.gateways.nginx import NginxGateway, nginx_binary
from harness.gateways.litellm import MODEL_NAME, LitellmGateway
from harness.promise import Never, Promise, Window, detection_window
from harness.promise.fallback import LITELLM_CALL_OVERHEAD, fallback_window
from harness.promise.preview import describe
from harness.scenario import Scenario, fallback_chain, parse_scenario
from tests.unit.test_haproxy_config import installed

# lines: 1 name, 2 gateway, 3 upstreams, 4 chat, 5 spare, 6 load
TEXT = """\
name: fb
gateway: {kind: GATEWAY, panic_threshold: 0}
upstreams:
  - {name: chat, replicas: 2, fallback: spare}
  - {name: spare, kind: SPARE_KIND, replicas: 1}
load: {duration: 10s}
"""


def scenario(gateway: str = "envoy", spare_kind: str = "openai", text: str = TEXT) -> Scenario:
    return parse_scenario(text.replace("GATEWAY", gateway).replace("SPARE_KIND", spare_kind), "s.yaml")


def refusal(text: str, gateway: str = "envoy", spare_kind: str = "openai") -> str:
    with pytest.raises(ScenarioError) as caught:
        scenario(gateway, spare_kind, text)
    return str(caught.value)


def addresses(s: Scenario) -> list[UpstreamAddress]:
    return [UpstreamAddress(u.name, f"{u.name}[{i}]", "127.0.0.1", 21000 + 100 * j + i, u.kind, fallback=u.fallback)
            for j, u in enumerate(s.upstreams) for i in range(u.replicas)]


# -- the scenario model ---------------------------------------------------------------------------------

def test_a_valid_fallback_is_read() -> None:
    s = scenario()
    assert s.upstreams[0].fallback == "spare" and s.upstreams[1].fallback is None
    assert fallback_chain(s, "chat") == ["spare"] and fallback_chain(s, "spare") == []


@pytest.mark.parametrize(("change", "where", "said"), [
    (("fallback: spare", "fallback: chat"), "s.yaml:4:31: upstreams[name='chat'].fallback",
     "cannot fall back to itself"),
    (("fallback: spare", "fallback: nope"), "s.yaml:4:31: upstreams[name='chat'].fallback",
     "no upstream pool named 'nope' (pools: chat, spare)"),
    (("replicas: 1}", "replicas: 1, fallback: chat}"), "s.yaml:4:31: upstreams[name='chat'].fallback",
     "the fallbacks make a cycle: chat -> spare -> chat"),
    (("kind: SPARE_KIND", "kind: mcp"), "s.yaml:4:31: upstreams[name='chat'].fallback",
     "fallback pools are for model APIs (openai or anthropic); 'chat' is 'openai' and 'spare' is 'mcp'"),
    (("fallback: spare", "fallback: Spare"), "s.yaml:4:31: upstreams[name='chat'].fallback",
     "String should match pattern"),
], ids=["itself", "unknown", "cycle", "mcp", "bad-name"])
def test_a_bad_fallback_is_refused_at_its_line(change: tuple[str, str], where: str, said: str) -> None:
    message = refusal(TEXT.replace(*change))
    assert where in message and said in message, message


def test_with_the_gateways_own_file_the_fallback_is_refused(tmp_path: Path) -> None:
    (tmp_path / "envoy.yaml").write_text("static_resources: {}\n")
    text = TEXT.replace("{kind: GATEWAY, panic_threshold: 0}", "{kind: envoy, config: envoy.yaml}")
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text.replace("SPARE_KIND", "openai"), str(tmp_path / "s.yaml"))
    assert "upstreams[name='chat'].fallback: fallback pools are rendered by chaosgate" in str(caught.value)


def test_envoy_refuses_a_fallback_to_another_api() -> None:
    message = refusal(TEXT, spare_kind="anthropic")
    assert "s.yaml:4:31: upstreams[name='chat'].fallback: envoy cannot honour this" in message
    assert "does not translate openai's API into anthropic's (the Envoy AI Gateway would" in message


def test_envoy_refuses_a_fallback_pool_with_other_tls() -> None:
    message = refusal(TEXT.replace("replicas: 1}", "replicas: 1, tls: true}"))
    assert "upstreams[name='chat'].fallback: envoy cannot honour this" in message and "same tls" in message


@pytest.mark.parametrize(("gateway", "name", "how"), [("haproxy", "HAProxy", "backend"),
                                                      ("nginx", "nginx", "upstream block")])
def test_haproxy_and_nginx_refuse_another_api_and_a_chain_of_two(gateway: str, name: str, how: str) -> None:
    message = refusal(TEXT, gateway=gateway, spare_kind="anthropic")
    assert f"upstreams[name='chat'].fallback: {gateway} cannot honour this: {name} sends the fallback pool's " \
           "replicas the request as the client sent it" in message
    text = TEXT.replace("replicas: 1}", "replicas: 1, fallback: last}") + "  - {name: last}\n"
    text = text.replace("load: {duration: 10s}\n", "") + "load: {duration: 10s}\n"
    message = refusal(text, gateway=gateway)
    assert f"upstreams[name='chat'].fallback: {gateway} cannot honour this: {name} has 1 level of fallback ({how} " \
           "(as backup servers)); chat -> spare -> last has 2" in message


def test_litellm_takes_anthropic_pools_but_not_for_its_anthropic_persona() -> None:
    assert scenario("litellm", "anthropic").upstreams[1].kind == "anthropic"
    text = TEXT.replace("load: {duration: 10s}", "load: {duration: 10s, mix: {chat: 1, anthropic: 1}}")
    message = refusal(text, gateway="litellm", spare_kind="anthropic")
    assert "upstreams[name='spare'].kind: litellm cannot honour this: the litellm adapter proxies the OpenAI API " \
           "only" in message and "the load's anthropic persona talks to it" in message


def test_litellm_refuses_a_pool_named_as_the_loads_model() -> None:
    message = refusal(TEXT.replace("{name: spare,", "{name: fake-model,").replace("fallback: spare",
                                                                                  "fallback: fake-model"),
                      gateway="litellm")
    assert "s.yaml:5:6: upstreams[name='fake-model'].name: litellm cannot honour this" in message, message


# -- LiteLLM ------------------------------------------------------------------------------------------

def litellm_config(s: Scenario) -> dict[str, Any]:
    return LitellmGateway(s.gateway, 10000, 10001, s.load_pool).config(addresses(s))


def test_litellm_renders_each_pool_as_a_model_group_and_the_fallback() -> None:
    config = litellm_config(scenario("litellm", "anthropic"))
    groups = [(m["model_name"], m["litellm_params"]["model"], m["litellm_params"]["api_base"], m["model_info"]["id"])
              for m in config["model_list"]]
    assert groups == [(MODEL_NAME, f"openai/{MODEL_NAME}", "http://127.0.0.1:21000/v1", "chat-0"),
                      (MODEL_NAME, f"openai/{MODEL_NAME}", "http://127.0.0.1:21001/v1", "chat-1"),
                      ("spare", "anthropic/spare", "http://127.0.0.1:21100", "spare-0")]  # /v1/messages: no /v1
    assert config["router_settings"]["fallbacks"] == [{MODEL_NAME: ["spare"]}]


def test_litellm_renders_a_chain_in_order_and_an_openai_fallback_with_v1() -> None:
    text = TEXT.replace("replicas: 1}", "replicas: 1, fallback: last}") + "  - {name: last, kind: anthropic}\n"
    text = text.replace("load: {duration: 10s}\n", "") + "load: {duration: 10s}\n"
    config = litellm_config(scenario("litellm", "openai", text))
    assert config["router_settings"]["fallbacks"] == [{MODEL_NAME: ["spare", "last"]}, {"spare": ["last"]}]
    by_group = {m["model_name"]: m["litellm_params"] for m in config["model_list"]}
    assert by_group["spare"]["api_base"].endswith("/v1") and by_group["spare"]["model"] == "openai/spare"
    assert by_group["last"]["model"] == "anthropic/last"


def test_litellm_without_fallback_renders_each_pool_as_a_group_and_no_fallbacks() -> None:
    config = litellm_config(scenario("litellm", "anthropic", text=TEXT.replace(", fallback: spare", "")))
    assert "fallbacks" not in config["router_settings"]
    assert [m["model_name"] for m in config["model_list"]] == [MODEL_NAME, MODEL_NAME, "spare"]


def test_litellm_renders_the_fallback_of_a_pool_the_load_does_not_use() -> None:
    text = TEXT.replace("replicas: 1}", "replicas: 1, fallback: last}") + "  - {name: last, kind: anthropic}\n"
    text = text.replace("load: {duration: 10s}\n", "").replace(", fallback: spare", "") + "load: {duration: 10s}\n"
    config = litellm_config(scenario("litellm", "openai", text))
    assert config["router_settings"]["fallbacks"] == [{"spare": ["last"]}]


def test_litellm_cools_deployments_down_as_outlier_detection_says_with_a_fallback() -> None:
    text = TEXT.replace("panic_threshold: 0}", "panic_threshold: 0, outlier_detection: {consecutive_5xx: 2, "
                                               "base_ejection_time: 5s}}")
    router = litellm_config(scenario("litellm", "anthropic", text))["router_settings"]
    assert (router["allowed_fails"], router["cooldown_time"], router["fallbacks"]) == (1, 5.0, [{MODEL_NAME: ["spare"]}])


# -- Envoy --------------------------------------------------------------------------------------------

def envoy_config(s: Scenario, tmp_path: Path) -> dict[str, Any]:
    return EnvoyGateway(s.gateway, 10000, 10001, s.load_pool).config(addresses(s), tmp_path)


def endpoints(config: dict[str, Any], cluster: str) -> list[tuple[int, list[int]]]:
    (found,) = [c for c in config["static_resources"]["clusters"] if c["name"] == cluster]
    return [(level.get("priority", 0), [e["endpoint"]["address"]["socket_address"]["port_value"]
                                        for e in level["lb_endpoints"]])
            for level in found["load_assignment"]["endpoints"]]


def test_envoy_puts_the_fallback_replicas_at_priority_1_of_the_pools_cluster(tmp_path: Path) -> None:
    config = envoy_config(scenario(), tmp_path)
    assert endpoints(config, "chat") == [(0, [21000, 21001]), (1, [21100])]
    assert endpoints(config, "spare") == [(0, [21100])]  # its own cluster, for /spare/ requests, unchanged
    # every answer still names the address the router picked, the fallback's own proxy when it served
    for route in config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
            "route_config"]["virtual_hosts"][0]["routes"]:
        assert route["response_headers_to_add"][0]["header"] == {"key": UPSTREAM_HEADER, "value": "%UPSTREAM_HOST%"}


def test_envoy_renders_a_chain_as_successive_priorities(tmp_path: Path) -> None:
    text = TEXT.replace("replicas: 1}", "replicas: 1, fallback: last}") + "  - {name: last}\n"
    text = text.replace("load: {duration: 10s}\n", "") + "load: {duration: 10s}\n"
    config = envoy_config(scenario(text=text), tmp_path)
    assert endpoints(config, "chat") == [(0, [21000, 21001]), (1, [21100]), (2, [21200])]
    assert endpoints(config, "spare") == [(0, [21100]), (1, [21200])]


def test_envoy_without_fallback_has_one_priority(tmp_path: Path) -> None:
    config = envoy_config(scenario(text=TEXT.replace(", fallback: spare", "")), tmp_path)
    assert endpoints(config, "chat") == [(0, [21000, 21001])]


@pytest.mark.parametrize("gateway", ["{kind: envoy, panic_threshold: 0}",
                                     "{kind: envoy, outlier_detection: {consecutive_5xx: 1}, retries: {}}"],
                         ids=["health-checks", "outlier-and-retries"])
def test_envoy_validates_the_config_with_a_fallback(gateway: str, tmp_path: Path) -> None:
    s = parse_scenario(TEXT.replace("{kind: GATEWAY, panic_threshold: 0}", gateway).replace("SPARE_KIND", "openai"),
                       "s.yaml")
    path = GATEWAYS["envoy"](s.gateway, 10000, 10001, "chat").write_config(addresses(s), tmp_path)
    assert endpoints(yaml.safe_load(path.read_text()), "chat")[1] == (1, [21100])
    result = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(path), "--log-level", "error"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and "OK" in result.stdout + result.stderr, result.stdout + result.stderr


# -- the promised window (harness/promise/fallback.py) ------------------------------------------------

FAULTED = TEXT.replace("load: {duration: 10s}", "load: {duration: 10s, users: 2, wait: 100ms, max_tokens: 4}") + \
    "faults:\n  - {kind: down, target: TARGET, at: 3s, for: 5s}\n"
HC = "{kind: GATEWAY, panic_threshold: 0, health_check: {interval: 500ms, timeout: 250ms, unhealthy_threshold: 2, " \
     "no_traffic_interval: 500ms}, request_timeout: 2s}"


def window(gateway: str, target: str = '"chat[*]"', replicas: int = 2, text: str = FAULTED) -> Promise:
    checks = "{kind: GATEWAY, health_check: null, request_timeout: 2s}" if gateway == "litellm" else HC
    s = scenario(gateway, text=text.replace("TARGET", target).replace("{kind: GATEWAY, panic_threshold: 0}", checks)
                 .replace("replicas: 2", f"replicas: {replicas}"))
    return fallback_window(s, s.faults[0])


def test_envoys_fallback_comes_one_request_after_detection() -> None:
    promise = window("envoy")
    assert isinstance(promise, Window)
    s = scenario(text=FAULTED.replace("TARGET", '"chat[*]"').replace("{kind: GATEWAY, panic_threshold: 0}", HC))
    detection = detection_window(s, s.faults[0])
    assert isinstance(detection, Window)
    answer = 0.02 + 4 / 400 + 0.005  # the fakes' default ttft and token rate, max_tokens 4, the gateway's overhead
    assert promise.earliest == detection.earliest
    assert promise.latest == pytest.approx(detection.latest + 0.1 + answer + answer)
    assert "Envoy spills to priority 1" in promise.how


def test_envoy_keeps_all_traffic_at_priority_0_while_enough_of_it_is_healthy() -> None:
    promise = window("envoy", '"chat[0]"', replicas=4)  # 3 of 4 healthy: 75% * 1.4 >= 100%
    assert isinstance(promise, Never) and "at least 1/1.4" in promise.why
    assert isinstance(window("envoy", '"chat[0]"', replicas=3), Window)  # 2 of 3: 67% * 1.4 < 100%: it spills


def test_litellms_fallback_comes_with_the_first_failed_request() -> None:
    promise = window("litellm", text=FAULTED.replace("kind: SPARE_KIND", "kind: anthropic"))
    assert isinstance(promise, Window)
    answer = 0.02 + 4 / 400 + 0.005
    # refused at once (down), one try (no retries): a wait and one answer away, then the fallback's answer
    # and the proxy's own time for the failed try and the fallback's call
    assert promise.latest == pytest.approx(0.1 + answer + answer + 2 * LITELLM_CALL_OVERHEAD)
    assert promise.earliest == pytest.approx(answer)


def test_litellm_does_not_fall_back_from_requests_that_succeed() -> None:
    text = FAULTED.replace("{kind: down, target: TARGET, at: 3s, for: 5s}",
                           "{kind: latency, target: TARGET, latency: 10ms, at: 3s, for: 5s}")
    assert isinstance(window("litellm", text=text), Never)


def test_a_pool_without_fallback_promises_none() -> None:
    promise = window("envoy", text=FAULTED.replace(", fallback: spare", ""))
    assert isinstance(promise, Never) and "has no fallback pool" in promise.why


# -- HAProxy ------------------------------------------------------------------------------------------

def test_haproxy_renders_the_fallback_replicas_as_backup_servers_of_the_pools_backend(tmp_path: Path) -> None:
    s = scenario("haproxy")
    gateway = HaproxyGateway(s.gateway, 10000, 10001, "chat")
    path = gateway.write_config(addresses(s), tmp_path)
    text = path.read_text()
    chat = text[text.index("\nbackend chat"):text.index("\nbackend spare")]
    assert "    option allbackups\n" in chat
    assert [line.strip() for line in chat.splitlines() if line.strip().startswith("server ")] == [
        "server chat-0 127.0.0.1:21000", "server chat-1 127.0.0.1:21001", "server spare-0 127.0.0.1:21100 backup"]
    spare = text[text.index("\nbackend spare"):]
    assert "backup" not in spare and "server spare-0 127.0.0.1:21100" in spare
    binary = installed(haproxy_binary)
    result = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and "Configuration file is valid" in result.stdout + result.stderr, result.stderr


def test_haproxy_uses_its_backup_servers_only_when_the_whole_pool_is_down() -> None:
    assert isinstance(window("haproxy", replicas=2), Window)
    promise = window("haproxy", '"chat[0]"', replicas=2)
    assert isinstance(promise, Never) and "HAProxy uses backup servers only while every other server is " \
                                          "unavailable" in promise.why


# -- nginx --------------------------------------------------------------------------------------------

def test_nginx_renders_the_fallback_replicas_as_backup_servers_of_the_pools_upstream(tmp_path: Path) -> None:
    s = scenario("nginx", text=TEXT.replace("panic_threshold: 0}", "health_check: null, nginx: {max_fails: 1}}"))
    gateway = NginxGateway(s.gateway, 10000, 10001, "chat")
    path = gateway.write_config(addresses(s), tmp_path)
    text = path.read_text()
    chat = text[text.index("upstream chat {"):text.index("upstream spare {")]
    assert [line.strip() for line in chat.splitlines() if line.strip().startswith("server ")] == [
        "server 127.0.0.1:21000 max_fails=1 fail_timeout=10s;", "server 127.0.0.1:21001 max_fails=1 fail_timeout=10s;",
        "server 127.0.0.1:21100 max_fails=1 fail_timeout=10s backup;"]
    spare = text[text.index("upstream spare {"):]
    assert "server 127.0.0.1:21100 max_fails=1 fail_timeout=10s;" in spare[:spare.index("}")]
    installed(nginx_binary)
    result = subprocess.run([*gateway.argv(path), "-t"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and "test is successful" in result.stderr, result.stderr


def test_nginx_turns_to_its_backup_once_every_primary_has_failed() -> None:
    text = FAULTED.replace("{kind: GATEWAY, panic_threshold: 0}",
                           "{kind: nginx, health_check: null, request_timeout: 2s, nginx: {max_fails: 1, fail_timeout: 2s}}")
    s = parse_scenario(text.replace("TARGET", '"chat[*]"').replace("SPARE_KIND", "openai"), "s.yaml")
    promise, detection = fallback_window(s, s.faults[0]), detection_window(s, s.faults[0])
    assert isinstance(promise, Window) and isinstance(detection, Window)
    assert promise.latest == pytest.approx(detection.latest + 0.1 + 2 * (0.02 + 4 / 400 + 0.005))
    s = parse_scenario(text.replace("TARGET", '"chat[1]"').replace("SPARE_KIND", "openai"), "s.yaml")
    assert isinstance(fallback_window(s, s.faults[0]), Never)


def test_validate_previews_the_fallback_window() -> None:
    s = scenario(text=FAULTED.replace("TARGET", '"chat[*]"').replace("{kind: GATEWAY, panic_threshold: 0}", HC))
    (line,) = [line for line in describe(s) if line.strip().startswith("fallback")]
    assert "after the fault's start: Envoy spills to priority 1" in line
    alone = scenario(text=FAULTED.replace("TARGET", '"chat[*]"').replace(", fallback: spare", ""))
    assert not [line for line in describe(alone) if line.strip().startswith("fallback")]
