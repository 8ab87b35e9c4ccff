"""The scenario model: a valid file gives the right model; invalid files give exact, located errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.errors import ScenarioError
from harness.expectations import EXPECTATIONS
from harness.faults import FAULTS
from harness.scenario import Scenario, load_scenario, parse_scenario

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))

VALID = """\
name: replica-reset
description: One of three replicas resets every connection.
seed: 7
gateway:
  kind: envoy
  health_check:
    path: /health
    interval: 1s
    timeout: 500ms
    unhealthy_threshold: 2
    healthy_threshold: 2
    no_traffic_interval: 1s
  panic_threshold: 0
upstreams:
  - {name: chat, kind: openai, replicas: 3}
  - {name: embed, replicas: 2, ttft: 50ms}
load: {users: 8, spawn_rate: 8, duration: 20s, mix: {chat: 0.8, chat_stream: 0.2}}
faults:
  - {kind: reset_peer, target: "chat[0]", at: 5s, for: 8s}
  - {name: slow, kind: latency, target: "embed[*]", latency: 250ms, at: 1.5s, for: 2m}
expect:
  - {kind: error_rate, window: baseline, max: 0.0}
  - {kind: upstream_unhealthy, target: "chat[0]", within: 3s}
  - {kind: no_traffic_to, target: "chat[0]", window: after_detection}
  - {kind: error_rate, window: {from: 16s, to: 20s}, max: 0.01}
  - {kind: latency, window: fault, percentile: 95, max: 300ms, fault: slow}
"""

# A small valid scenario the error tests add to; lines 1-4, faults start on line 5.
BASE = """\
name: t
upstreams:
  - {name: chat, replicas: 3}
load: {duration: 20s}
"""


def errors_of(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "x.yaml")
    lines = str(info.value).splitlines()
    assert lines == [str(p) for p in info.value.problems]
    return lines


# -- a valid scenario ------------------------------------------------------------------

def test_valid_scenario_gives_the_right_model() -> None:
    s = parse_scenario(VALID.replace("duration: 20s", "duration: 3m"), "x.yaml")
    assert s.name == "replica-reset"
    assert s.seed == 7
    hc = s.gateway.health_check
    assert hc is not None
    assert (hc.interval, hc.timeout, hc.no_traffic_interval) == (1.0, 0.5, 1.0)
    assert (hc.unhealthy_threshold, hc.healthy_threshold) == (2, 2)
    assert s.gateway.panic_threshold == 0
    assert s.gateway.outlier_detection is None and s.gateway.retries is None
    assert s.pools == {"chat": 3, "embed": 2}
    assert s.replicas == ["chat[0]", "chat[1]", "chat[2]", "embed[0]", "embed[1]"]
    assert s.load_pool == "chat"
    assert s.load.duration == 180.0
    assert s.load.mix == {"chat": 0.8, "chat_stream": 0.2}
    assert s.upstreams[1].ttft == pytest.approx(0.05)

    reset, slow = s.faults
    assert (reset.kind, reset.target, reset.at, reset.duration, reset.label) == ("reset_peer", "chat[0]", 5.0, 8.0,
                                                                                 "reset_peer@chat[0]")
    assert type(reset) is FAULTS["reset_peer"]
    assert (slow.kind, slow.at, slow.duration, slow.label) == ("latency", 1.5, 120.0, "slow")
    assert slow.latency == pytest.approx(0.25)

    assert [type(e) for e in s.expect] == [EXPECTATIONS[k] for k in
                                           ("error_rate", "upstream_unhealthy", "no_traffic_to", "error_rate", "latency")]
    assert s.expect[1].within == 3.0
    window = s.expect[3].window
    assert (window.start, window.end) == (16.0, 20.0)
    assert s.expect[4].percentile == 95 and s.expect[4].max == pytest.approx(0.3) and s.expect[4].fault == "slow"


def test_defaults_and_load_pool() -> None:
    s = parse_scenario(BASE, "x.yaml")
    assert s.gateway.kind == "envoy"
    assert s.gateway.health_check is not None and s.gateway.health_check.interval == 1.0
    assert s.gateway.panic_threshold == 50.0
    assert s.faults == [] and s.expect == []
    assert s.load_pool == "chat"
    two = parse_scenario(BASE.replace("load: {duration: 20s}",
                                      "  - {name: embed}\nload: {duration: 20s, pool: embed}"), "x.yaml")
    assert two.load_pool == "embed"
    assert two.replicas == ["chat[0]", "chat[1]", "chat[2]", "embed[0]"]


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_every_shipped_scenario_loads(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.name == path.stem
    assert scenario.faults and scenario.expect


def test_shipped_scenarios_exist() -> None:
    assert {p.name for p in SCENARIOS} >= {"replica-reset.yaml", "all-down.yaml", "latency-spike.yaml"}


def test_load_scenario_of_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ScenarioError) as info:
        load_scenario(missing)
    assert str(info.value) == f"{missing}: cannot read file: No such file or directory"


# -- golden errors ---------------------------------------------------------------------

def test_bad_duration() -> None:
    text = BASE + 'faults:\n  - {kind: down, target: "chat[0]", at: fast, for: 2s}\n'
    assert errors_of(text) == [
        "x.yaml:6:37: faults[0].at: expected a duration such as '1.5s' or '250ms', got 'fast'"]


def test_unknown_field() -> None:
    text = BASE.replace("load: {duration: 20s}", "load: {duration: 20s, userz: 3}")
    assert errors_of(text) == ["x.yaml:4:23: load.userz: unknown field 'userz'"]


def test_unknown_fault_kind_lists_the_known_kinds() -> None:
    text = BASE + 'faults:\n  - {kind: explode, target: "chat[0]", at: 1s, for: 2s}\n'
    assert errors_of(text) == [
        "x.yaml:6:5: faults[0]: unknown kind 'explode'; expected one of " + ", ".join(FAULTS)]
    assert all(kind in errors_of(text)[0] for kind in FAULTS)


# -- faults of the fakes' control APIs, and mcp pools ------------------------------------------

MIXED = """\
name: t
upstreams:
  - {name: tools, kind: mcp, replicas: 2}
  - {name: chat, replicas: 2}
load: {duration: 20s}
"""


def test_control_faults_are_flat_and_typed_by_mode() -> None:
    text = MIXED + ('faults:\n'
                    '  - {kind: llm_fault, mode: error_status, status: 429, rate: 0.5, target: "chat[0]", at: 1s, for: 2s}\n'
                    '  - {kind: llm_fault, mode: slow_ttft, ttft: 1500ms, target: "chat[0]", at: 3s, for: 2s}\n'
                    '  - {kind: mcp_fault, mode: tools_disappear, target: tools, at: 1s, for: 2s}\n')
    scenario = parse_scenario(text, "x.yaml")
    assert scenario.load_pool == "chat"  # the first openai pool
    assert [f.label for f in scenario.faults] == [
        "llm_fault:error_status@chat[0]", "llm_fault:slow_ttft@chat[0]", "mcp_fault:tools_disappear@tools"]
    assert scenario.faults[1].ttft == 1.5  # type: ignore[attr-defined]


def test_unknown_mode_lists_the_known_modes_at_the_mode() -> None:
    text = MIXED + 'faults:\n  - {kind: llm_fault, mode: explode, target: "chat[0]", at: 1s, for: 2s}\n'
    (line,) = errors_of(text)
    assert line.startswith("x.yaml:7:23: faults[0].mode: unknown mode 'explode'; expected one of error_status, ")
    assert "cpu_burn" in line


def test_missing_mode_and_a_bad_mode_parameter() -> None:
    text = MIXED + ('faults:\n  - {kind: mcp_fault, target: tools, at: 1s, for: 2s}\n'
                    '  - {kind: llm_fault, mode: error_status, status: 404, target: "chat[0]", at: 1s, for: 2s}\n')
    assert errors_of(text) == ["x.yaml:7:5: faults[0]: required field 'mode' is missing",
                               "x.yaml:8:43: faults[1].status: Input should be 429, 500, 502 or 503, got 404"]


def test_control_faults_act_on_their_own_pool_kind() -> None:
    text = MIXED + ('faults:\n  - {kind: llm_fault, mode: inference_fail, target: tools, at: 1s, for: 2s}\n'
                    '  - {kind: mcp_fault, mode: session_expiry, target: "chat[1]", at: 1s, for: 2s}\n'
                    '  - {kind: reset_peer, target: "tools[0]", at: 1s, for: 2s}\n')
    assert errors_of(text) == [
        "x.yaml:7:45: faults[0].target: llm_fault faults act on openai pools; 'tools' is an mcp pool",
        "x.yaml:8:45: faults[1].target: mcp_fault faults act on mcp pools; 'chat' is an openai pool"]


def test_overlapping_control_faults_on_one_replica_are_rejected() -> None:
    text = MIXED + ('faults:\n  - {kind: llm_fault, mode: slow_ttft, target: chat, at: 1s, for: 5s}\n'
                    '  - {kind: llm_fault, mode: inference_fail, target: "chat[1]", at: 2s, for: 1s}\n')
    (line,) = errors_of(text)
    assert "two 'llm_fault' faults cannot be active on one replica at once" in line


def test_the_load_needs_an_openai_pool() -> None:
    only_mcp = "name: t\nupstreams:\n  - {name: tools, kind: mcp}\nload: {duration: 20s}\n"
    assert errors_of(only_mcp) == [
        "x.yaml:2:1: upstreams: the load sends chat completions, so it needs an openai pool; 'tools' is 'mcp'"]
    assert errors_of(MIXED.replace("duration: 20s", "duration: 20s, pool: tools")) == [
        "x.yaml:5:23: load.pool: the load sends chat completions, so it needs an openai pool; 'tools' is 'mcp'"]


def test_unknown_expectation_kind_lists_the_known_kinds() -> None:
    text = BASE + "expect:\n  - {kind: fast, window: run, max: 0.1}\n"
    (line,) = errors_of(text)
    assert line.startswith("x.yaml:6:5: expect[0]: unknown kind 'fast'; expected one of ")
    assert all(kind in line for kind in EXPECTATIONS)


def test_missing_kind() -> None:
    text = BASE + "expect:\n  - {window: run, max: 0.1}\n"
    assert errors_of(text) == ["x.yaml:6:5: expect[0]: required field 'kind' is missing"]


def test_missing_required_fault_param_names_the_fault() -> None:
    text = BASE + 'faults:\n  - name: slow\n    kind: latency\n    target: "chat[0]"\n    at: 1s\n    for: 2s\n'
    assert errors_of(text) == ["x.yaml:6:5: faults[name='slow'].latency: required field is missing"]


def test_missing_required_top_level_field() -> None:
    assert errors_of("name: t\nupstreams:\n  - {name: chat}\n") == ["x.yaml:1:1: load: required field is missing"]


def test_invalid_window_name() -> None:
    text = (BASE + 'faults:\n  - {kind: down, target: "chat[0]", at: 1s, for: 2s}\n'
            "expect:\n  - {kind: error_rate, window: during, max: 0.1}\n")
    assert errors_of(text) == [
        "x.yaml:8:24: expect[0].window: Input should be 'baseline', 'fault', 'after_detection', 'recovery' "
        "or 'run', got 'during'"]


def test_explicit_window_error_names_the_window_field_not_pydantic_union_members() -> None:
    # The window is `NamedWindow | ExplicitWindow`; an error inside `{from, to}` must be reported
    # on `expect[0].window.to`, not on pydantic's internal member names
    # (`window.literal[...]`, `window.ExplicitWindow.to`), which mean nothing to the author.
    text = (BASE + 'faults:\n  - {kind: down, target: "chat[0]", at: 1s, for: 2s}\n'
            "expect:\n  - {kind: error_rate, window: {from: 1s, to: soon}, max: 0.1}\n")
    lines = errors_of(text)
    assert not [line for line in lines if "ExplicitWindow" in line or "literal[" in line], lines
    assert any(line.endswith("expect[0].window.to: expected a duration such as '1.5s' or '250ms', got 'soon'")
               for line in lines), lines


def test_window_to_before_from() -> None:
    text = (BASE + 'faults:\n  - {kind: down, target: "chat[0]", at: 1s, for: 2s}\n'
            "expect:\n  - {kind: error_rate, window: {from: 5s, to: 1s}, max: 0.1}\n")
    assert errors_of(text) == ["x.yaml:8:24: expect[0].window: expected 'to' after 'from'"]


def test_target_pointing_to_a_missing_replica() -> None:
    text = BASE + 'faults:\n  - {kind: down, target: "chat[3]", at: 1s, for: 2s}\n'
    assert errors_of(text) == ["x.yaml:6:18: faults[0].target: pool 'chat' has 3 replicas (0..2), got index 3"]


def test_target_pointing_to_a_missing_pool() -> None:
    text = BASE + "expect:\n  - {kind: upstream_healthy, target: 'other[0]', within: 1s}\n"
    lines = errors_of(text)
    assert "x.yaml:6:30: expect[0].target: no upstream pool named 'other' (pools: chat)" in lines


def test_malformed_target() -> None:
    text = BASE + "faults:\n  - {kind: down, target: 'CHAT', at: 1s, for: 2s}\n"
    assert errors_of(text) == [
        "x.yaml:6:18: faults[0].target: expected a target like 'chat[0]', 'chat[*]' or 'chat', got 'CHAT'"]


def test_fault_outlasting_the_load() -> None:
    text = BASE + 'faults:\n  - {kind: down, target: "chat[0]", at: 15s, for: 10s}\n'
    assert errors_of(text) == [
        "x.yaml:6:46: faults[0].for: the fault ends at 25s, after the load ends (20s); expected at + for <= load.duration"]


def test_fault_ending_exactly_with_the_load_is_fine() -> None:
    s = parse_scenario(BASE + 'faults:\n  - {kind: down, target: "chat[0]", at: 15s, for: 5s}\n', "x.yaml")
    assert s.faults[0].at + s.faults[0].duration == s.load.duration


def test_duplicate_fault_labels() -> None:
    text = (BASE + 'faults:\n  - {kind: down, target: "chat[0]", at: 1s, for: 2s}\n'
            '  - {kind: down, target: "chat[0]", at: 5s, for: 2s}\n')
    assert errors_of(text) == ["x.yaml:7:5: faults[1]: two faults are both called 'down@chat[0]'; give them distinct names"]


def test_duplicate_pool_names() -> None:
    text = BASE.replace("load:", "  - {name: chat}\nload:")
    assert errors_of(text) == ["x.yaml:4:6: upstreams[name='chat'].name: pool 'chat' is defined twice"]


def test_expectation_naming_an_unknown_fault() -> None:
    text = (BASE + 'faults:\n  - {name: a, kind: down, target: "chat[0]", at: 1s, for: 2s}\n'
            "expect:\n  - {kind: upstream_unhealthy, target: \"chat[0]\", within: 3s, fault: b}\n")
    assert errors_of(text) == ["x.yaml:8:63: expect[0].fault: no fault called 'b' (faults: a)"]


def test_fault_expectation_without_faults() -> None:
    text = BASE + "expect:\n  - {kind: upstream_unhealthy, target: \"chat[0]\", within: 3s}\n"
    assert errors_of(text) == ["x.yaml:6:5: expect[0]: this expectation refers to a fault, but the scenario has no faults"]


def test_invalid_yaml_names_the_line() -> None:
    assert errors_of("name: t\nupstreams: [\n  - x: : y\n") == [
        "x.yaml:3:3: invalid YAML: expected the node content, but found '-'"]


def test_duplicate_yaml_key() -> None:
    assert errors_of("name: t\nname: u\n") == ["x.yaml:2:1: name: duplicate key"]


def test_empty_file() -> None:
    assert errors_of("") == ["x.yaml:1:1: the file is empty; expected a scenario mapping"]
    assert errors_of("# only a comment\n") == ["x.yaml:1:1: the file is empty; expected a scenario mapping"]


def test_top_level_list() -> None:
    assert errors_of("- a\n- b\n") == ["x.yaml:1:1: expected a mapping with name, upstreams, load, faults and expect"]


def test_several_problems_are_all_reported() -> None:
    text = BASE.replace("duration: 20s", "duration: soon") + "seed: abc\nextra: 1\n"
    assert errors_of(text) == [
        "x.yaml:5:1: seed: Input should be a valid integer, unable to parse string as an integer, got 'abc'",
        "x.yaml:4:8: load.duration: expected a duration such as '1.5s' or '250ms', got 'soon'",
        "x.yaml:6:1: extra: unknown field 'extra'",
    ]


def test_several_cross_check_problems_are_all_reported() -> None:
    text = (BASE + "faults:\n"
            '  - {kind: down, target: "chat[7]", at: 1s, for: 2s}\n'
            '  - {kind: down, target: "chat[7]", at: 18s, for: 5s}\n'
            "expect:\n  - {kind: upstream_unhealthy, target: \"chat[0]\", within: 3s, fault: nope}\n")
    lines = errors_of(text)
    assert [line.split(": ", 1)[1].split(":")[0] for line in lines] == [
        "faults[0].target", "faults[1].target", "faults[1].for", "faults[1]", "expect[0].fault"]


# -- the schema is complete --------------------------------------------------------------

def test_json_schema_lists_every_fault_and_expectation_kind() -> None:
    schema = Scenario.model_json_schema(by_alias=True)
    fault_kinds = schema["properties"]["faults"]["items"]["discriminator"]["mapping"]
    expect_kinds = schema["properties"]["expect"]["items"]["discriminator"]["mapping"]
    assert set(fault_kinds) == set(FAULTS)
    assert set(expect_kinds) == set(EXPECTATIONS)
    for kinds in (fault_kinds, expect_kinds):  # every mapping resolves to a definition with that kind
        for kind, ref in kinds.items():
            definition = schema["$defs"][ref.removeprefix("#/$defs/")]
            # A kind with modes (llm_fault, ...) is itself a union over `mode`: check each member.
            members = [schema["$defs"][member.removeprefix("#/$defs/")]
                       for member in definition["discriminator"]["mapping"].values()] if "oneOf" in definition else [definition]
            for member in members:
                assert member["properties"]["kind"]["const"] == kind
    text = json.dumps(schema)
    assert '"for"' in text and '"from"' in text  # aliases, not the Python names


def test_registries_name_their_models_by_kind() -> None:
    for registry in (FAULTS, EXPECTATIONS):
        for kind, model in registry.items():
            assert model.model_fields["kind"].annotation.__args__ == (kind,)


# -- expectations scoped to gateways ------------------------------------------------------

SCOPED = BASE + """faults:
  - {kind: down, target: "chat[0]", at: 5s, for: 5s}
expect:
  - {kind: error_rate, window: baseline, max: 0.0}
  - {kind: no_traffic_to, target: "chat[0]", window: after_detection, gateways: [envoy, haproxy]}
  - {kind: traffic_to, target: "chat[0]", window: fault, min_share: 0.2, gateways: [nginx]}
"""


@pytest.mark.parametrize(("gateway", "kinds"), [
    ("envoy", ["error_rate", "no_traffic_to"]),
    ("haproxy", ["error_rate", "no_traffic_to"]),
    ("nginx", ["error_rate", "traffic_to"]),
    ("litellm", ["error_rate"]),
])
def test_a_run_judges_only_the_expectations_for_its_gateway(gateway: str, kinds: list[str]) -> None:
    scenario = parse_scenario(SCOPED, "x.yaml", gateway)
    assert [e.kind for e in scenario.expect] == kinds


def test_the_file_s_own_gateway_scopes_too() -> None:
    scenario = parse_scenario(SCOPED + "gateway: {kind: nginx, health_check: null}\n", "x.yaml")
    assert [e.kind for e in scenario.expect] == ["error_rate", "traffic_to"]


def test_an_unknown_gateway_in_an_expectation_is_named() -> None:
    assert errors_of(SCOPED.replace("[envoy, haproxy]", "[envoy, hapoxy]")) == [
        "x.yaml:9:89: expect[1].gateways[1]: unknown gateway 'hapoxy'; expected one of envoy, haproxy, nginx, litellm, "
        "portkey"]
    assert errors_of(SCOPED.replace("[nginx]", "[]"))[0].startswith("x.yaml:10:")


def test_a_mapping_or_a_list_where_a_name_goes_is_named_with_what_was_expected() -> None:
    # `kind: {a: 1}` printed nothing at all (the mapping's errors were dropped as "saying more")
    text = BASE + "gateway:\n  kind: {a: 1}\n"
    assert errors_of(text) == ["x.yaml:6:3: gateway.kind: Input should be 'envoy', 'haproxy', 'nginx', 'litellm' or "
                               "'portkey', got a mapping"]
    assert errors_of(BASE + "gateway:\n  kind: [envoy]\n") == [
        "x.yaml:6:3: gateway.kind: Input should be 'envoy', 'haproxy', 'nginx', 'litellm' or 'portkey', "
        "got a list"]
    window = BASE + 'faults:\n  - {kind: down, target: "chat[0]", at: 1s, for: 2s}\nexpect:\n  - {kind: error_rate, max: 0.1, window: [1]}\n'
    assert errors_of(window) == ["x.yaml:8:34: expect[0].window: Input should be 'baseline', 'fault', 'after_detection', "
                                 "'recovery' or 'run', or a mapping, got a list"]


@pytest.mark.parametrize(("value", "message"), [
    ("!foo 1", "seed: cannot read '1' as !foo: could not determine a constructor for the tag '!foo'; "
               "expected a plain value (no YAML tag)"),
    ("!!int abc", "seed: cannot read 'abc' as !!int: invalid literal for int() with base 10: 'abc'; "
                  "expected a plain value (no YAML tag)"),
    ("&a [*a]", "seed[0]: an alias refers to a node that contains it; expected a value that ends"),
    ("2001-12-14", "seed: Input should be a valid integer, got the date 2001-12-14"),
])
def test_yaml_values_that_python_cannot_build_are_named_not_raised(value: str, message: str) -> None:
    (line,) = errors_of(f"name: t\nseed: {value}\nupstreams: [{{name: chat}}]\nload: {{duration: 1s}}\n")
    assert re.match(r"x\.yaml:2:\d+: ", line) and line.split(": ", 1)[1] == message, line


def test_keys_that_are_not_names_and_bytes_that_are_not_text_are_named(tmp_path: Path) -> None:
    assert errors_of("name: t\n? [a, b]\n: 1\nupstreams: [{name: chat}]\nload: {duration: 1s}\n") == [
        "x.yaml:2:3: expected a field name as the key, got a list"]
    assert errors_of("name: t\nseed: 1\x07\nupstreams: [{name: chat}]\nload: {duration: 1s}\n") == [
        "x.yaml:2:8: invalid YAML: the character U+0007 is not allowed (a control character); expected printable text"]
    assert errors_of('name: t\n"\\x1e": 1\nupstreams: [{name: chat}]\nload: {duration: 1s}\n')[0].endswith(
        "'\\x1e': unknown field '\\x1e'")  # quoted: a control character would end the message's line
    binary = tmp_path / "x.yaml"
    binary.write_bytes(b"name: t\nseed: \xff\n")
    with pytest.raises(ScenarioError, match=rf"^{re.escape(str(binary))}:2:7: not UTF-8 text: byte 0xff "):
        load_scenario(binary)


def test_aliases_that_explode_are_refused() -> None:
    lines = ["name: t", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 7)]
    (line,) = errors_of("\n".join([*lines, "upstreams: [{name: chat}]", "load: {duration: 1s}", ""]))
    assert "aliases expand to more than 100000 values" in line and re.match(r"x\.yaml:\d+:\d+: a", line)
