"""The lint's Envoy traps: each names its field at the file's line, and only where it bites."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.lint import TRAPS, Finding, lint_scenario, lint_text
from harness.scenario import load_scenario, parse_scenario

REPO = Path(__file__).resolve().parents[2]
UNHEALTHY = '{kind: upstream_unhealthy, target: "chat[0]", within: 3s}'
RATE = "{kind: error_rate, window: run, max: 0.1}"
TRAP_IDS = {t.id for t in TRAPS}


def text(gateway: str, expect: str = RATE, replicas: int = 3, target: str = "chat[0]", at: str = "5s",
         fault: str = "reset_peer") -> str:
    return ("name: t\n"
            f"gateway: {gateway}\n"
            f"upstreams:\n  - {{name: chat, replicas: {replicas}}}\n"
            "load: {duration: 20s}\n"
            f'faults:\n  - {{kind: {fault}, target: "{target}", at: {at}, for: 8s}}\n'
            f"expect:\n  - {expect}\n")


def lint(source: str) -> list[Finding]:
    """The traps' findings (the checks of the scenario itself: tests/unit/test_lint_checks.py)."""
    return [f for f in lint_text(parse_scenario(source, "x.yaml"), source, "x.yaml") if f.trap in TRAP_IDS]


def ids(source: str) -> list[str]:
    return [f.trap for f in lint(source)]


def test_every_trap_has_an_id_a_gateway_a_severity_and_a_summary() -> None:
    assert len({t.id for t in TRAPS}) == len(TRAPS)
    for trap in TRAPS:
        assert trap.id.startswith(f"{trap.gateway}.") and trap.severity in ("warning", "error") and trap.summary


# -- no-traffic interval ---------------------------------------------------------------------

def test_no_traffic_interval_longer_than_the_time_to_the_fault() -> None:
    (finding,) = lint(text("{health_check: {interval: 1s}, panic_threshold: 0}", UNHEALTHY))
    assert finding.trap == "envoy.no-traffic-interval" and finding.severity == "warning"
    assert finding.field == "gateway.health_check.no_traffic_interval"
    assert (finding.file, finding.line) == ("x.yaml", 2)  # a default: the closest line the file writes
    assert finding.message.startswith("is 60s (Envoy default), longer than the interval")
    assert "55s away when reset_peer@chat[0] starts at 5s" in finding.message
    assert "promised detection: [1s, 56.04s]" in finding.message
    assert str(finding).startswith("x.yaml:2:11: warning [envoy.no-traffic-interval] gateway.health_check.no_traffic_interval: ")
    # a run's progress line says "warning: " itself
    assert finding.without_severity().startswith("x.yaml:2:11: [envoy.no-traffic-interval] gateway.health_check.")


def test_no_traffic_interval_at_its_own_line_when_the_file_sets_it() -> None:
    source = "name: t\ngateway:\n  health_check:\n    no_traffic_interval: 10s\n" + text("{}").split("\n", 2)[2]
    (finding,) = lint(source)
    assert (finding.line, finding.column) == (4, 5)
    assert finding.message.startswith("is 10s, longer")


def test_no_traffic_interval_does_not_bite_once_the_timer_has_run_out() -> None:
    assert ids(text("{health_check: {no_traffic_interval: 4s}, panic_threshold: 0}", at="3s")) == []  # 1s left
    assert ids(text("{health_check: {no_traffic_interval: 4s}, panic_threshold: 0}", at="2s")) == [
        "envoy.no-traffic-interval"]
    assert ids(text("{health_check: {interval: 1s, no_traffic_interval: 1s}, panic_threshold: 0}")) == []
    assert ids(text("{health_check: null, panic_threshold: 0}")) == []


def test_no_traffic_interval_on_a_pool_the_load_never_reaches() -> None:
    source = text("{health_check: {no_traffic_interval: 4s}, panic_threshold: 0}", at="15s", target="embed[0]")
    source = source.replace("upstreams:\n", "upstreams:\n  - {name: embed, replicas: 2}\n").replace(
        "load: {duration: 20s}", "load: {duration: 30s, pool: chat}")
    (finding,) = lint(source)
    assert "the load never sends traffic to 'embed'" in finding.message


# -- panic threshold ---------------------------------------------------------------------------

def test_panic_threshold_when_a_fault_breaks_most_of_a_pool() -> None:
    gw = "{health_check: {no_traffic_interval: 1s}, panic_threshold: 50}"
    (finding,) = lint(text(gw, target="chat[*]"))
    assert finding.trap == "envoy.panic-threshold" and finding.line == 2
    assert "while reset_peer@chat[*] leaves 0 of 3 replicas of 'chat' healthy (0%)" in finding.message
    assert "set panic_threshold: 0" in finding.message
    assert ids(text(gw, target="chat[0]")) == []  # 2 of 3 healthy: 67% >= 50%
    assert ids(text(gw, replicas=2, target="chat[0]")) == []  # 50% is not below 50%


def test_panic_threshold_counts_faults_active_at_the_same_moment() -> None:
    gw = "{health_check: {no_traffic_interval: 1s}, panic_threshold: 50}"
    source = text(gw).replace('  - {kind: reset_peer, target: "chat[0]", at: 5s, for: 8s}\n',
                              '  - {kind: reset_peer, target: "chat[0]", at: 5s, for: 8s}\n'
                              '  - {kind: down, target: "chat[1]", at: 6s, for: 1s}\n')
    (finding,) = lint(source)
    assert "while reset_peer@chat[0], down@chat[1] leave 1 of 3" in finding.message
    apart = source.replace("at: 6s, for: 1s", "at: 14s, for: 1s")
    assert ids(apart) == []


def test_panic_threshold_with_an_all_down_expectation() -> None:
    all_down = "{kind: all_down_response, within: 4s}"
    (finding,) = lint(text("{health_check: {no_traffic_interval: 1s}, panic_threshold: 50}", all_down))
    assert finding.message.startswith("is 50%: when fewer replicas than that are healthy")
    assert ids(text("{health_check: {no_traffic_interval: 1s}, panic_threshold: 0}", all_down)) == []


# -- max_ejection_percent ----------------------------------------------------------------------

@pytest.mark.parametrize(("replicas", "percent", "trapped"), [
    (3, 10, True), (3, 33, True), (3, 34, False), (2, 50, False), (2, 49, True), (1, 99, True), (1, 100, False),
    (10, 10, False),
])
def test_max_ejection_percent_that_ejects_nothing(replicas: int, percent: int, trapped: bool) -> None:
    gw = f"{{health_check: {{no_traffic_interval: 1s}}, panic_threshold: 0, outlier_detection: {{max_ejection_percent: {percent}}}}}"
    found = [f for f in lint(text(gw, replicas=replicas)) if f.trap == "envoy.max-ejection-percent"]
    if trapped:
        (finding,) = found
        assert finding.severity == "error"
        assert finding.field == "gateway.outlier_detection.max_ejection_percent"
        assert finding.message.startswith(f"is {percent}%: with {replicas} replicas in 'chat' Envoy ejects none")
    else:
        assert found == []


def test_max_ejection_percent_below_what_a_fault_breaks() -> None:
    gw = "{health_check: {no_traffic_interval: 1s}, panic_threshold: 0, outlier_detection: {max_ejection_percent: 40}}"
    (finding,) = [f for f in lint(text(gw, target="chat[*]")) if f.trap == "envoy.max-ejection-percent"]
    assert "ejects at most 1 of the 3 replicas of 'chat', and reset_peer@chat[*] breaks 3" in finding.message


# -- active checks un-ejecting outlier ejections ----------------------------------------------------

FLAPPY = ("{health_check: {no_traffic_interval: 1s}, panic_threshold: 0, "
          "outlier_detection: {consecutive_5xx: 3, max_ejection_percent: 100}}")


def test_uneject_flapping_when_requests_fail_behind_a_passing_health_check() -> None:
    source = text(FLAPPY, fault="llm_fault, mode: inference_fail")
    (finding,) = lint(source)
    assert finding.trap == "envoy.uneject-flapping" and finding.field == "gateway.outlier_detection"
    assert "llm_fault:inference_fail@chat[0] makes requests fail (the replica answers 500)" in finding.message
    assert "successful_active_health_check_uneject_host" in finding.message


def test_no_flapping_when_the_check_sees_the_fault_or_nothing_is_ejected() -> None:
    assert ids(text(FLAPPY)) == []  # a reset fails the checks too: nothing un-ejects it
    deep = FLAPPY.replace("{no_traffic_interval: 1s}", "{path: /health/deep, no_traffic_interval: 1s}")
    assert ids(text(deep, fault="llm_fault, mode: inference_fail")) == []
    capped = FLAPPY.replace("max_ejection_percent: 100", "max_ejection_percent: 10")
    assert ids(text(capped, fault="llm_fault, mode: inference_fail")) == ["envoy.max-ejection-percent"]
    passive_only = FLAPPY.replace("health_check: {no_traffic_interval: 1s}", "health_check: null")
    assert ids(text(passive_only, fault="llm_fault, mode: inference_fail")) == []


# -- update_merge_window ------------------------------------------------------------------------------

MERGING = "{health_check: {no_traffic_interval: 1s}, panic_threshold: 0, envoy: {update_merge_window: 1s}}"


def merge_ids(source: str) -> list[str]:
    return [f.trap for f in lint(source) if f.trap == "envoy.merge-window"]


def test_merge_window_when_one_fault_changes_several_replicas_at_once() -> None:
    source = ("name: t\ngateway:\n  health_check: {no_traffic_interval: 1s}\n  panic_threshold: 0\n"
              "  envoy:\n    update_merge_window: 1s\n" + text("{}", target="chat[*]").split("\n", 2)[2])
    (finding,) = lint(source)
    assert finding.trap == "envoy.merge-window" and finding.severity == "warning"
    assert finding.field == "gateway.envoy.update_merge_window" and (finding.line, finding.column) == (6, 5)
    assert finding.message.startswith("is 1s: reset_peer@chat[*] marks chat[0] and chat[1] unhealthy at about the "
                                      "same time (between 6s and 7.24s into the load)")
    assert "up to 1s after the admin API (and the journal) shows it" in finding.message
    assert finding.message.endswith("set update_merge_window: 0s")


def test_no_merge_window_trap_at_chaosgates_default_of_zero() -> None:
    assert merge_ids(text("{health_check: {no_traffic_interval: 1s}, panic_threshold: 0}", target="chat[*]")) == []
    zero = MERGING.replace("update_merge_window: 1s", "update_merge_window: 0s")
    assert merge_ids(text(zero, target="chat[*]")) == []


def test_merge_window_with_two_faults_on_different_replicas() -> None:
    two = text(MERGING).replace('  - {kind: reset_peer, target: "chat[0]", at: 5s, for: 8s}\n',
                                '  - {kind: reset_peer, target: "chat[0]", at: 5s, for: 8s}\n'
                                '  - {kind: down, target: "chat[1]", at: 5500ms, for: 8s}\n')
    (finding,) = lint(two)
    assert ("reset_peer@chat[0] marking chat[0] unhealthy (between 6s and 7.24s into the load) and "
            "down@chat[1] marking chat[1] unhealthy (between 6.5s and 7.74s) can come close together") in finding.message
    apart = two.replace("at: 5500ms, for: 8s", "at: 9s, for: 8s").replace("duration: 20s", "duration: 30s")
    assert merge_ids(apart) == []  # chat[1] is detected 10-11.2s in, more than 1s after chat[0]'s latest


def test_merge_window_between_a_short_faults_detection_and_readmission() -> None:
    short = text(MERGING, fault="llm_fault, mode: health_fail").replace("for: 8s", "for: 1500ms")
    (finding,) = lint(short)
    assert "llm_fault:health_fail@chat[0] marking chat[0] unhealthy" in finding.message
    assert "and chat[0] readmitted after llm_fault:health_fail@chat[0]" in finding.message
    assert merge_ids(text(MERGING, fault="llm_fault, mode: health_fail")) == []  # 8s apart


def test_merge_window_counts_changes_of_one_pool_only() -> None:
    source = text(MERGING).replace("upstreams:\n", "upstreams:\n  - {name: embed, replicas: 2}\n").replace(
        '  - {kind: reset_peer, target: "chat[0]", at: 5s, for: 8s}\n',
        '  - {kind: reset_peer, target: "chat[0]", at: 5s, for: 8s}\n'
        '  - {kind: reset_peer, target: "embed[0]", at: 5s, for: 8s}\n').replace(
        "load: {duration: 20s}", "load: {duration: 20s, pool: chat}")
    assert merge_ids(source) == []


def test_merge_window_ignores_faults_that_change_no_health() -> None:
    # inference fails behind the shallow /health and nothing else watches: no health change to merge
    assert merge_ids(text(MERGING, target="chat[*]", fault="llm_fault, mode: inference_fail")) == []


def test_merge_window_is_envoys_own_setting_for_other_gateways() -> None:
    from harness.gateways.base import not_applicable

    source = text(MERGING.replace("health_check: {no_traffic_interval: 1s}, ", ""), target="chat[*]")
    scenario = parse_scenario(source, "x.yaml", "haproxy")
    assert "envoy.merge-window" not in [f.trap for f in lint_scenario(scenario)]
    assert "gateway.envoy: not applicable to haproxy: these are envoy's own settings" in not_applicable(scenario)
    assert not any(n.startswith("gateway.envoy") for n in not_applicable(parse_scenario(text("{}"), "x.yaml", "haproxy")))


def test_several_traps_at_once_in_registry_order() -> None:
    source = ("name: t\ngateway: {panic_threshold: 50, outlier_detection: {}}\n"
              "upstreams:\n  - {name: chat, replicas: 3}\nload: {duration: 20s}\n"
              'faults:\n  - {kind: timeout, target: "chat[*]", at: 5s, for: 8s}\n'
              'expect:\n  - {kind: all_down_response, within: 4s}\n')
    assert ids(source) == ["envoy.no-traffic-interval", "envoy.panic-threshold", "envoy.max-ejection-percent"]


def test_lint_without_the_file_has_no_lines() -> None:
    scenario = parse_scenario(text("{panic_threshold: 50}", target="chat[*]"), "x.yaml")
    assert {(f.line, f.file) for f in lint_scenario(scenario)} == {(None, "")}


@pytest.mark.parametrize("path", sorted((REPO / "scenarios").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_scenarios_have_no_traps(path: Path) -> None:
    scenario = load_scenario(path)
    assert lint_text(scenario, path.read_text(), str(path)) == []


TRAP_SCENARIOS = sorted((REPO / "scenarios" / "traps").glob("*.yaml"))


@pytest.mark.parametrize("path", TRAP_SCENARIOS, ids=lambda p: p.stem)
def test_each_trap_scenario_names_its_trap_in_its_header_and_the_lint_finds_it(path: Path) -> None:
    source = path.read_text()
    header = source.split("\n", 1)[0]
    assert header.startswith("# TRAP "), "a trap scenario starts with '# TRAP <trap id>: ...'"
    trap_id = header.removeprefix("# TRAP ").split(":")[0]
    assert trap_id in {t.id for t in TRAPS}
    scenario = load_scenario(path)
    assert trap_id in [f.trap for f in lint_text(scenario, source, str(path))]




def test_every_trap_has_a_scenario_where_it_bites() -> None:
    shipped = {p.read_text().split("\n", 1)[0].removeprefix("# TRAP ").split(":")[0] for p in TRAP_SCENARIOS}
    missing = {t.id for t in TRAPS} - shipped
    assert not missing, f"add scenarios/traps/<gateway>-<trap>.yaml for {sorted(missing)}"
