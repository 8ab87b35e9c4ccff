"""Anthropic pools: the upstream kind, the anthropic persona in the load mix and where it goes, the
fault kind of the Anthropic fake, and how the local runtime starts its replicas."""

from __future__ import annotations

import pytest

from harness.errors import ScenarioError
from harness.faults import ControlFault
from harness.load.config import LoadConfig, split_users
from harness.runtimes.docker_compose import load_definitions
from harness.runtimes.local import FAKE_MODULES, FAKE_OPTIONS
from harness.scenario import parse_scenario

BOTH = """\
name: t
upstreams:
  - {name: chat, kind: openai, replicas: 2}
  - {name: claude, kind: anthropic, replicas: 2, ttft: 30ms, tokens_per_s: 200}
load: {duration: 10s, users: 4, max_tokens: 8, mix: {chat: 1, anthropic: 1, anthropic_stream: 1}}
"""


def errors(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "s.yaml")
    return [str(p) for p in info.value.problems]


def test_an_anthropic_pool_beside_an_openai_pool() -> None:
    scenario = parse_scenario(BOTH, "s.yaml")
    assert scenario.pool_kinds == {"chat": "openai", "claude": "anthropic"}
    assert scenario.anthropic_load_pool == "claude" and scenario.load_pool == "chat"
    config = LoadConfig.for_scenario(scenario, "http://127.0.0.1:1")
    assert (config.base_path, config.anthropic_path, config.anthropic_model) == ("", "/claude", "claude-fake")
    assert (config.users, config.mcp_users) == (4, 0)  # the anthropic persona shares Locust's users
    assert split_users(4, config.mix) == (4, 0)


def test_an_anthropic_only_scenario_needs_no_openai_pool() -> None:
    scenario = parse_scenario("name: t\nupstreams: [{name: claude, kind: anthropic}]\n"
                              "load: {duration: 5s, mix: {anthropic_stream: 1}}\n", "s.yaml")
    config = LoadConfig.for_scenario(scenario, "http://127.0.0.1:1")
    assert config.anthropic_path == "" and config.users == 10  # the first pool: the gateway's root


def test_anthropic_persona_without_an_anthropic_pool_is_an_error() -> None:
    assert errors("name: t\nupstreams: [{name: chat}]\n"
                  "load: {duration: 5s, mix: {chat: 1, anthropic: 1, anthropic_stream: 2}}\n") == [
        "s.yaml:3:37: load.mix.anthropic: the anthropic persona talks to an anthropic pool, but no upstream has "
        "kind: anthropic",
        "s.yaml:3:51: load.mix.anthropic_stream: the anthropic_stream persona talks to an anthropic pool, but no "
        "upstream has kind: anthropic"]


def test_anthropic_pool_must_name_an_anthropic_pool() -> None:
    assert errors(BOTH.replace("mix:", "anthropic_pool: chat, mix:")) == [
        "s.yaml:5:48: load.anthropic_pool: expected an anthropic pool (anthropic pools: claude); 'chat' is an "
        "openai pool"]
    assert errors(BOTH.replace("mix:", "anthropic_pool: nope, mix:")) == [
        "s.yaml:5:48: load.anthropic_pool: expected an anthropic pool (anthropic pools: claude); no pool named 'nope'"]


def test_chat_kinds_need_an_openai_pool_not_an_anthropic_one() -> None:
    assert errors("name: t\nupstreams: [{name: claude, kind: anthropic}]\nload: {duration: 5s}\n") == [
        "s.yaml:2:1: upstreams: the load sends chat completions, so it needs an openai pool; 'claude' is 'anthropic'"]


def test_each_fake_s_fault_kind_acts_on_its_own_pool_kind() -> None:
    text = BOTH + ('faults:\n'
                   '  - {kind: anthropic_fault, mode: anthropic_error, target: "chat[0]", at: 1s, for: 2s}\n'
                   '  - {kind: llm_fault, mode: openai_error, target: "claude[0]", at: 1s, for: 2s}\n')
    assert errors(text) == [
        "s.yaml:7:52: faults[0].target: anthropic_fault faults act on anthropic pools; 'chat' is an openai pool",
        "s.yaml:8:43: faults[1].target: llm_fault faults act on openai pools; 'claude' is an anthropic pool"]
    (problem,) = errors(BOTH + 'faults:\n  - {kind: anthropic_fault, mode: openai_error, target: claude, at: 1s, '
                               'for: 2s}\n')
    assert problem.startswith("s.yaml:7:29: faults[0].mode: unknown mode 'openai_error'; expected one of "
                              "anthropic_error, ")


def test_anthropic_faults_parse_with_their_modes() -> None:
    text = BOTH + ('faults:\n'
                   '  - {kind: anthropic_fault, mode: anthropic_error, error: rate_limit_error, retry_after: 2s,\n'
                   '     retry_after_format: http_date, target: "claude[0]", at: 1s, for: 2s}\n'
                   '  - {kind: anthropic_fault, mode: midstream_error, after_tokens: 3, target: "claude[1]", at: 1s,'
                   ' for: 2s}\n'
                   '  - {kind: llm_fault, mode: openai_error, error: insufficient_quota, target: chat, at: 4s, for: 2s}\n'
                   '  - {kind: oom, target: "claude[0]", at: 5s, for: 2s}\n')
    problems = errors(text)  # oom needs a memory limit: the pool kind itself is accepted
    assert problems == ["s.yaml:11:17: faults[3].target: oom faults need a memory limit to hit; set memory_limit on "
                        "upstream 'claude'"]
    scenario = parse_scenario(text.replace("ttft: 30ms", "ttft: 30ms, memory_limit: 128Mi"), "s.yaml")
    first, second, third, _ = scenario.faults
    assert isinstance(first, ControlFault) and isinstance(third, ControlFault)
    assert first.mode_body() == {"mode": "anthropic_error", "error": "rate_limit_error", "retry_after": "2s",
                                 "retry_after_format": "http_date", "rate": 1.0}
    assert second.label == "anthropic_fault:midstream_error@claude[1]"
    assert third.mode_body()["error"] == "insufficient_quota"


def test_the_local_runtime_starts_the_anthropic_fake_with_the_pool_s_timing() -> None:
    scenario = parse_scenario(BOTH, "s.yaml")
    assert FAKE_MODULES["anthropic"] == "fakes.anthropic"
    assert FAKE_OPTIONS["anthropic"](scenario.upstreams[1], scenario) == [
        "--ttft-ms", "30", "--tokens-per-s", "200", "--max-tokens", "8"]


def test_compose_yaml_has_an_anthropic_replica_template() -> None:
    definitions = load_definitions()
    assert set(definitions.replicas) == set(FAKE_MODULES)  # the docker runtime finds a template for every kind
    entrypoint = definitions.replica("anthropic").entrypoint
    assert entrypoint is not None and entrypoint[:3] == ["python3", "-m", "fakes.anthropic"]
