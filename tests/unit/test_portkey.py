"""The Portkey adapter (harness/gateways/portkey.py): the config it renders from the scenario, what it refuses or
notes, its promise (never; the fallback per request), its lint traps (each biting and not), and the load hook that
carries its config and reads which target served."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import ScenarioError
from harness.gateways import GATEWAYS, not_applicable
from harness.gateways.base import LoadTarget, ShapesLoad, UpstreamAddress
from harness.gateways.portkey import (BIND_SHIM, CONFIG_HEADER, HEADERS_SHIM, PORTKEY_DIR, SERVED_BY_HEADER,
                                      START_SCRIPT, PortkeyGateway, render, retry_waits, status_codes)
from harness.lint import lint_scenario
from harness.load.config import LoadConfig
from harness.promise import Never, Unknown, Window, detection_window, recovery_window
from harness.promise.fallback import PORTKEY_CALL_OVERHEAD, fallback_window
from harness.promise.portkey import request_cost
from harness.scenario import Scenario, parse_scenario
from tests.unit.test_expectations import Run, Verdict, fallback_run

TEXT = """\
name: pk
gateway: {kind: portkey, health_check: null, request_timeout: 2s}
upstreams:
  - {name: chat, replicas: 2, fallback: claude}
  - {name: claude, kind: anthropic, replicas: 1}
load: {duration: 10s, users: 2, wait: 100ms, max_tokens: 4}
faults:
  - {kind: down, target: "chat[*]", at: 3s, for: 5s}
"""
ANSWER = 0.02 + 4 / 400 + 0.005  # the fakes' default ttft and token rate, max_tokens 4, the gateway's overhead


def scenario(text: str = TEXT) -> Scenario:
    return parse_scenario(text, "pk.yaml")


def addresses(s: Scenario) -> list[UpstreamAddress]:
    return [UpstreamAddress(u.name, f"{u.name}[{i}]", "127.0.0.1", 21000 + 100 * j + i, u.kind, fallback=u.fallback)
            for j, u in enumerate(s.upstreams) for i in range(u.replicas)]


def refusal(text: str) -> str:
    with pytest.raises(ScenarioError) as caught:
        scenario(text)
    return str(caught.value)


# -- the config ---------------------------------------------------------------------------------------

def test_a_pool_with_a_fallback_is_a_fallback_over_loadbalance_groups_with_anthropic_translated() -> None:
    s = scenario()
    config, served = render(s.gateway, addresses(s), "chat")
    assert config["strategy"] == {"mode": "fallback"}
    chat, claude = config["targets"]
    assert chat["strategy"] == claude["strategy"] == {"mode": "loadbalance"}
    assert [(t["provider"], t["custom_host"]) for t in chat["targets"]] == [
        ("openai", "http://127.0.0.1:21000/v1"), ("openai", "http://127.0.0.1:21001/v1")]
    assert [(t["provider"], t["custom_host"]) for t in claude["targets"]] == [("anthropic", "http://127.0.0.1:21100/v1")]
    assert config["request_timeout"] == 2000 and "retry" not in config  # Portkey's own default: no retries
    assert config["forward_headers"] == ["x-chaosgate-request"]
    assert served == {"config.targets[0].targets[0]": "127.0.0.1:21000", "config.targets[0].targets[1]": "127.0.0.1:21001",
                      "config.targets[1].targets[0]": "127.0.0.1:21100"}


def test_a_pool_without_fallback_is_one_loadbalance_and_retries_map_to_attempts_and_status_codes() -> None:
    text = TEXT.replace(", fallback: claude", "").replace(
        "request_timeout: 2s}", "request_timeout: 2s, retries: {num_retries: 2, retry_on: [connect-failure, "
                                "gateway-error], per_try_timeout: 500ms}}")
    s = scenario(text)
    config, served = render(s.gateway, addresses(s), "chat")
    assert config["strategy"] == {"mode": "loadbalance"} and len(config["targets"]) == 2
    assert config["retry"] == {"attempts": 2, "on_status_codes": [502, 503, 504]}
    assert config["request_timeout"] == 500  # per_try_timeout: Portkey's limit is per try
    assert served == {"config.targets[0]": "127.0.0.1:21000", "config.targets[1]": "127.0.0.1:21001"}
    assert status_codes(["5xx"]) == [500, 502, 503, 504] and status_codes(["connect-failure", "reset"]) == []


def test_the_adapter_hands_the_load_its_config_and_its_served_by_header(tmp_path: Path) -> None:
    s = scenario()
    gateway = PortkeyGateway(s.gateway, 18000, 18001, "chat")
    written = gateway.write_config(addresses(s), tmp_path)
    assert isinstance(gateway, ShapesLoad) and gateway.host_health() == {} and gateway.admin_url is None
    target = gateway.load_target()
    assert json.loads(target.headers[CONFIG_HEADER]) == json.loads(written.read_text())
    assert target.upstream_header == SERVED_BY_HEADER and target.upstreams["config.targets[1].targets[0]"] == \
        "127.0.0.1:21100"
    argv = gateway.argv(written)
    assert "CHAOSGATE_BIND_ADDRESS=127.0.0.1" in argv and "--port=18000" in argv and "--headless" in argv
    # both preloads, each before Portkey's start script: the bind address, and fetched headers Portkey may edit
    imports = [argv[i + 1] for i, a in enumerate(argv) if a == "--import"]
    assert imports == [BIND_SHIM.as_uri(), HEADERS_SHIM.as_uri()]
    assert all(Path(shim.removeprefix("file://")).is_file() for shim in imports)
    assert argv.index(HEADERS_SHIM.as_uri()) < argv.index(str(PORTKEY_DIR / START_SCRIPT))


def test_the_load_sends_the_gateways_headers_and_records_the_replica_its_header_names() -> None:
    # (the worker sends config.headers and records config.upstream_of(response headers): harness/load/worker.py,
    # exercised end to end by tests/integration/test_portkey.py)
    config = LoadConfig(host="", base_path="", users=1, spawn_rate=1, duration=1, mix={"chat": 1.0}, wait=0,
                        max_tokens=4, request_timeout=5, seed=1)
    target = LoadTarget({CONFIG_HEADER: "{}"}, SERVED_BY_HEADER, {"config.targets[1]": "127.0.0.1:9"})
    line = json.dumps({"host": "http://127.0.0.1:1", "headers": target.headers,
                       "upstream_header": target.upstream_header, "upstreams": target.upstreams})
    aimed = config.aimed(line)
    assert aimed.host == "http://127.0.0.1:1" and aimed.headers == {CONFIG_HEADER: "{}"}
    assert aimed.upstream_of({SERVED_BY_HEADER: "config.targets[1]"}) == "127.0.0.1:9"
    assert aimed.upstream_of({SERVED_BY_HEADER: "config.targets[7]"}) == "config.targets[7]"  # unknown: as it came
    assert aimed.upstream_of({"x-chaosgate-upstream": "127.0.0.1:5"}) == "127.0.0.1:5"
    assert config.upstream_of({SERVED_BY_HEADER: "config.targets[1]"}) is None  # another gateway: its own header only


# -- what it refuses, what does not apply ---------------------------------------------------------------

def test_portkey_is_registered_with_no_health_view() -> None:
    assert GATEWAYS["portkey"] is PortkeyGateway and PortkeyGateway.health_view is False


def test_expectations_that_need_a_view_of_health_are_refused() -> None:
    message = refusal(TEXT + 'expect:\n  - {kind: upstream_unhealthy, target: "chat[0]", within: 2s}\n')
    assert "portkey keeps no view of upstream health" in message, message
    assert "pk.yaml:10:5" in message, message


SPARE = "  - {name: claude, kind: anthropic, replicas: 1}\n  - {name: spare, replicas: 1}\n"


@pytest.mark.parametrize(("text", "said"), [
    (TEXT.replace("health_check: null,", "health_check: null, outlier_detection: {consecutive_5xx: 2},"),
     "has no circuit breaker or ejection"),
    (TEXT.replace("  - {name: claude, kind: anthropic, replicas: 1}\n",
                  "  - {name: claude, kind: anthropic, replicas: 1}\n  - {name: tools, kind: mcp}\n"),
     "routes openai and anthropic pools only"),
], ids=["outlier-detection", "mcp-pool"])
def test_what_portkey_cannot_honour_is_refused(text: str, said: str) -> None:
    assert said in refusal(text)


@pytest.mark.parametrize("mix", ["{chat_stream: 1.0}", "{chat: 0.5, chat_stream: 0.5}", "{anthropic_stream: 1.0}",
                                 "{chat_stream: 2.0, anthropic_stream: 1.0}"])
def test_streamed_personas_are_accepted(mix: str) -> None:
    # (refused until harness/gateways/portkey_headers.mjs: every stream was a 500; tests/integration/test_portkey.py
    # streams through Portkey with both personas and the official clients)
    s = scenario(TEXT.replace("max_tokens: 4}", f"max_tokens: 4, mix: {mix}}}"))  # refused: ScenarioError
    assert [i for i in PortkeyGateway.settings_issues(s) if i.path[:2] == ("load", "mix")] == []


def test_the_anthropic_persona_gets_a_conditional_branch_and_every_pool_is_served_at_the_root(tmp_path: Path) -> None:
    s = scenario(TEXT.replace(", fallback: claude", "").replace("max_tokens: 4}", "max_tokens: 4, pool: spare, "
                                                                 "mix: {chat: 1.0, anthropic: 1.0}}")
                 .replace("  - {name: claude, kind: anthropic, replicas: 1}\n", SPARE))  # the load's pool not first
    assert s.anthropic_persona_pool == "claude" and scenario().anthropic_persona_pool is None
    gateway = PortkeyGateway(s.gateway, 18000, 18001, s.load_pool, anthropic_pool=s.anthropic_persona_pool)
    gateway.write_config(addresses(s), tmp_path)
    config = gateway.config
    assert config["strategy"] == {"mode": "conditional", "default": "chat",
                                  "conditions": [{"query": {"params.model": {"$eq": "claude-fake"}}, "then": "anthropic"}]}
    chat, claude = config["targets"]
    assert chat["name"] == "chat" and chat["targets"][0]["custom_host"] == "http://127.0.0.1:21200/v1"  # spare
    assert claude["name"] == "anthropic" and claude["targets"][0]["provider"] == "anthropic"
    target = gateway.load_target()
    assert target.upstreams == {"config.targets[0].targets[0]": "127.0.0.1:21200",
                                "config.targets[1].targets[0]": "127.0.0.1:21100"}
    assert target.base_path == "" and target.anthropic_path == ""  # not /spare: Portkey routes by its config
    line = json.dumps({"base_path": target.base_path, "anthropic_path": target.anthropic_path})
    config_of_load = LoadConfig(host="", base_path="/spare", anthropic_path="/claude", users=1, spawn_rate=1,
                                duration=1, mix={"chat": 1.0}, wait=0, max_tokens=4, request_timeout=5, seed=1)
    aimed = config_of_load.aimed(line)
    assert aimed.base_path == "" and aimed.anthropic_path == ""


def test_what_does_not_apply_is_noted_not_refused() -> None:
    notes = not_applicable(scenario(TEXT.replace("health_check: null, ", "")))
    assert any(n.startswith("gateway.health_check: not applicable to portkey: Portkey has no health checks")
               for n in notes), notes
    assert any("limits each try of each target" in n for n in notes)


# -- the promise ----------------------------------------------------------------------------------------

def test_portkey_promises_no_detection_and_no_recovery() -> None:
    s = scenario()
    assert isinstance(detection_window(s, s.faults[0]), Never)
    assert isinstance(recovery_window(s, s.faults[0]), Never)


def test_the_fallback_comes_with_the_first_request_after_the_fault() -> None:
    s = scenario()
    promise = fallback_window(s, s.faults[0])
    assert isinstance(promise, Window)
    assert promise.earliest == pytest.approx(ANSWER)
    assert promise.latest == pytest.approx(0.1 + ANSWER + ANSWER + 2 * PORTKEY_CALL_OVERHEAD)


def test_retries_add_their_tries_and_portkeys_backoff_to_the_fallback_window() -> None:
    s = scenario(TEXT.replace("request_timeout: 2s}", "request_timeout: 2s, retries: {num_retries: 2}}"))
    promise = fallback_window(s, s.faults[0])
    assert isinstance(promise, Window)
    assert retry_waits(2) == 3.0
    assert promise.latest == pytest.approx(0.1 + ANSWER + 3.0 + ANSWER + 4 * PORTKEY_CALL_OVERHEAD)


def test_a_status_outside_on_status_codes_and_a_cut_try_are_not_retried() -> None:
    base = TEXT.replace("request_timeout: 2s}", "request_timeout: 1s, retries: {num_retries: 2, retry_on: [gateway-error]}}")
    status = scenario(base.replace("{kind: down, target", "{kind: llm_fault, mode: error_status, status: 500, target"))
    assert request_cost(status, status.faults[0]).retried is False
    s503 = scenario(base.replace("{kind: down, target", "{kind: llm_fault, mode: error_status, status: 503, target"))
    cost = request_cost(s503, s503.faults[0])
    assert cost.retried and cost.tries == 3 and cost.seconds == 3.0
    hang = scenario(base.replace("{kind: down, target", "{kind: llm_fault, mode: hang_before_headers, target"))
    cut = request_cost(hang, hang.faults[0])
    assert cut.retried is False and cut.seconds == 1.0


def test_a_fault_on_some_replicas_has_no_promised_latest_and_a_working_pool_promises_none() -> None:
    some = scenario(TEXT.replace('target: "chat[*]"', 'target: "chat[0]"'))
    assert isinstance(fallback_window(some, some.faults[0]), Unknown)
    slow = scenario(TEXT.replace("{kind: down, target", "{kind: latency, latency: 10ms, target"))
    assert isinstance(fallback_window(slow, slow.faults[0]), Never)


def test_fallback_within_promised_passes_only_inside_portkeys_window() -> None:
    def promised_run() -> Run:
        run = fallback_run('{kind: fallback_within, target: "backup[*]", within: promised}')
        run.text = run.text.replace("  - {name: chat, replicas: 3}\n", "  - {name: chat, replicas: 3, fallback: backup}\n")
        run.text = run.text.replace("name: t\n", "name: t\ngateway: {kind: portkey, health_check: null, "
                                                 "request_timeout: 2s, retries: {num_retries: 1}}\n")
        run.events[0]["text"] = run.text
        return run.requests(0, 5, replica="chat[1]")

    s = parse_scenario(promised_run().text, "t.yaml")
    promise = fallback_window(s, s.faults[0])
    assert isinstance(promise, Window) and 1.0 < promise.upper < 3.0, promise  # a try, 1s of backoff, a retry

    def first_answer_at(after: float) -> Verdict:
        run = promised_run().request(5.0 + after - 0.05, replica="backup[0]")
        return run.requests(5.0 + after + 0.5, 13, replica="backup[0]").finish().verdict()

    inside = first_answer_at((promise.lower + promise.upper) / 2)
    assert inside.passed is True, inside.detail
    late = first_answer_at(promise.upper + 0.5)
    assert late.passed is False and "later than it" in late.detail, late.detail


# -- the lint traps ---------------------------------------------------------------------------------------

def traps(text: str) -> list[str]:
    return [f.trap for f in lint_scenario(scenario(text))]


ONE_DOWN = TEXT.replace('target: "chat[*]"', 'target: "chat[0]"')


def test_no_health_bites_a_faulty_pool_without_fallback_only() -> None:
    assert "portkey.no-health" in traps(ONE_DOWN.replace(", fallback: claude", ""))
    assert "portkey.no-health" not in traps(ONE_DOWN)
    slow = ONE_DOWN.replace(", fallback: claude", "").replace("{kind: down, target", "{kind: latency, latency: 10ms, target")
    assert "portkey.no-health" not in traps(slow)  # requests succeed: nothing to fall back from


def test_retry_same_target_bites_retries_of_a_failure_portkey_retries() -> None:
    retried = ONE_DOWN.replace("request_timeout: 2s}", "request_timeout: 2s, retries: {num_retries: 1}}")
    assert "portkey.retry-same-target" in traps(retried)
    assert "portkey.retry-same-target" not in traps(ONE_DOWN)  # no retries
    not_listed = retried.replace("retries: {num_retries: 1}", "retries: {num_retries: 1, retry_on: [gateway-error]}") \
        .replace("{kind: down, target", "{kind: llm_fault, mode: error_status, status: 500, target")
    assert "portkey.retry-same-target" not in traps(not_listed)  # 500 is not in on_status_codes: not retried


def test_timeout_not_retried_bites_a_hanging_replica_with_retries() -> None:
    hang = ONE_DOWN.replace("request_timeout: 2s}", "request_timeout: 1s, retries: {num_retries: 2}}") \
        .replace("{kind: down, target", "{kind: llm_fault, mode: hang_before_headers, target")
    assert "portkey.timeout-not-retried" in traps(hang)
    assert "portkey.timeout-not-retried" not in traps(hang.replace(", retries: {num_retries: 2}", ""))
    assert "portkey.timeout-not-retried" not in traps(
        hang.replace("{kind: llm_fault, mode: hang_before_headers, target", "{kind: down, target"))


def test_attaching_to_a_portkey_chaosgate_did_not_start_is_refused_with_the_reason() -> None:
    from harness.attach import Attach, attached_gateway
    from harness.errors import StackError

    with pytest.raises(StackError, match="--attach is not supported for portkey yet: its routing config travels"):
        attached_gateway(scenario(), Attach("http://127.0.0.1:18787"), lambda: 18788)
