"""The lint's checks of the scenario itself, on every gateway (harness/lint/promised_windows.py,
unitless_durations.py), and the promised windows `chaosgate validate` prints before a run."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.lint import CHECKS, Finding, lint_text
from harness.own_config import kind_of_file
from harness.scenario import load_scenario, parse_scenario

REPO = Path(__file__).resolve().parents[2]
HC = "{interval: 1s, timeout: 500ms, unhealthy_threshold: 2, healthy_threshold: 2, no_traffic_interval: 1s}"
NEVER_GATEWAY = "{health_check: null, panic_threshold: 0, outlier_detection: {max_ejection_percent: 10}}"
CHECK_IDS = {c.id for c in CHECKS}


def source(gateway: str, expect: list[str], fault: str = '{kind: reset_peer, target: "chat[0]", at: 5s, for: 8s}',
           load: str = "{duration: 20s}") -> str:
    return ("name: t\n"
            f"gateway: {gateway}\n"
            "upstreams:\n  - {name: chat, replicas: 3}\n"
            f"load: {load}\n"
            f"faults:\n  - {fault}\n"
            + ("expect:\n" + "".join(f"  - {e}\n" for e in expect) if expect else ""))


def checks(text: str, gateway: str | None = None) -> list[Finding]:
    return [f for f in lint_text(parse_scenario(text, "x.yaml", gateway), text, "x.yaml") if f.trap in CHECK_IDS]


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


# -- within: promised against a configuration that promises never ---------------------------

def test_within_promised_against_a_never_promise_is_an_error_at_the_expectations_line() -> None:
    text = source(NEVER_GATEWAY, ["{kind: error_rate, window: run, max: 1.0}",
                                  '{kind: upstream_unhealthy, target: "chat[0]", within: promised}'])
    (finding,) = checks(text)
    assert finding.trap == "promise.never-under-promised" and finding.severity == "error"
    assert (finding.line, finding.field) == (10, "expect[1].within")
    assert "max_ejection_percent 10%" in finding.message and "within: never" in finding.message


def test_fallback_within_promised_without_a_promised_fallback_is_an_error_and_with_one_is_not() -> None:
    def text(fallback: str) -> str:
        return ("name: t\n"
                f"gateway: {{panic_threshold: 0, health_check: {HC}}}\n"
                f"upstreams:\n  - {{name: chat, replicas: 2{fallback}}}\n  - {{name: spare, replicas: 1}}\n"
                "load: {duration: 20s}\n"
                'faults:\n  - {kind: down, target: "chat[*]", at: 5s, for: 8s}\n'
                'expect:\n  - {kind: fallback_within, target: "spare[*]", within: promised}\n')

    (finding,) = checks(text(""))
    assert finding.trap == "promise.never-under-promised" and finding.field == "expect[0].within"
    assert "promises no fallback for down@chat[*] (pool 'chat' has no fallback pool)" in finding.message
    assert checks(text(", fallback: spare")) == []


def test_the_explicit_form_and_a_scoped_expectation_are_not_findings() -> None:
    assert checks(source(NEVER_GATEWAY, ['{kind: upstream_unhealthy, target: "chat[0]", within: never}'])) == []
    scoped = '{kind: upstream_unhealthy, target: "chat[0]", within: promised, gateways: [envoy]}'
    nginx_single = ("name: t\ngateway: {panic_threshold: 0, health_check: " + HC + "}\n"
                    "upstreams:\n  - {name: chat, replicas: 1}\nload: {duration: 20s}\n"
                    'faults:\n  - {kind: down, target: "chat[0]", at: 5s, for: 8s}\n'
                    f"expect:\n  - {scoped}\n")
    assert checks(nginx_single) == []                      # envoy: a window
    assert checks(nginx_single, "nginx") == []             # nginx: the expectation is not judged


def test_within_never_against_a_promised_window_is_a_warning() -> None:
    (finding,) = checks(source(f"{{health_check: {HC}, panic_threshold: 0}}",
                               ['{kind: upstream_unhealthy, target: "chat[0]", within: never}']))
    assert finding.trap == "promise.never-against-a-window" and finding.severity == "warning"
    assert finding.field == "expect[0].within" and "in [1s, 2.04s] +200ms margin" in finding.message


def test_lint_and_validate_report_it_before_a_run(tmp_path: Path) -> None:
    path = tmp_path / "never.yaml"
    path.write_text(source(NEVER_GATEWAY, ['{kind: upstream_unhealthy, target: "chat[0]", within: promised}']))
    code, out, _ = invoke("lint", str(path))
    assert code == 1 and f"{path}:9:" in out and "error [promise.never-under-promised] expect[0].within" in out
    code, out, _ = invoke("validate", str(path))
    assert code == 0 and "[promise.never-under-promised]" in out


# -- a fault or a load that ends before a promised moment -----------------------------------

def test_a_load_that_ends_before_the_promised_recovery_is_a_warning() -> None:
    gateway = f"{{health_check: {HC}, panic_threshold: 0}}"   # recovery [1s, 2.04s] +200ms
    (finding,) = checks(source(gateway, [], load="{duration: 14s}"))
    assert finding.trap == "promise.unobservable" and finding.field == "load.duration" and finding.line == 5
    assert finding.message.startswith("the load ends 1s after reset_peer@chat[0] ends, but its promised recovery")
    assert "allows up to 2.24s" in finding.message and "set load.duration to at least 15.24s" in finding.message
    assert checks(source(gateway, [], load="{duration: 15.3s}")) == []


def test_a_fault_shorter_than_its_promised_detection_is_a_warning() -> None:
    slow = "{health_check: {interval: 5s, timeout: 500ms, unhealthy_threshold: 2, no_traffic_interval: 5s}, " \
           "panic_threshold: 0}"
    found = checks(source(slow, [], load="{duration: 40s}"))
    (finding,) = [f for f in found if f.field == "faults[0].for"]
    assert finding.trap == "promise.unobservable" and "lasts 8s, but its promised detection" in finding.message
    assert "make it last at least 10.24s" in finding.message


# -- a bare number is seconds ----------------------------------------------------------------

def test_a_duration_without_a_unit_is_named_with_its_line_column_and_field() -> None:
    text = source("{health_check: {interval: 1s, timeout: 1000, no_traffic_interval: 1s}, panic_threshold: 0}",
                  ['{kind: upstream_unhealthy, target: "chat[0]", within: 3, gateways: [nginx]}',
                   '{kind: upstream_unhealthy, target: "chat[0]", within: 3s}'],
                  fault='{kind: reset_peer, target: "chat[0]", at: 5, for: 8s}')
    found = {f.field: f for f in checks(text) if f.trap == "scenario.unitless-duration"}
    assert set(found) == {"gateway.health_check.timeout", "faults[0].at", "expect[0].within"}
    timeout = found["gateway.health_check.timeout"]
    assert (timeout.line, timeout.column, timeout.severity) == (2, 40, "warning")
    assert timeout.message == "1000 has no unit and is read as 1000 seconds; write 1000s for seconds or 1000ms " \
                              "for milliseconds"
    assert str(timeout).startswith("x.yaml:2:40: warning [scenario.unitless-duration] gateway.health_check.timeout: ")
    assert found["expect[0].within"].line == 9    # an expectation scoped to another gateway is still in the file


def test_zero_and_durations_with_units_are_not_named() -> None:
    text = source("{health_check: " + HC + ", panic_threshold: 0, request_timeout: 0}", [])
    assert [f for f in checks(text) if f.trap == "scenario.unitless-duration"] == []


def test_nginx_fail_timeout_is_a_duration_too() -> None:
    text = source("{nginx: {max_fails: 1, fail_timeout: 2}}", [])
    (finding,) = [f for f in checks(text, "nginx") if f.trap == "scenario.unitless-duration"]
    assert finding.field == "gateway.nginx.fail_timeout"


# the comparison suite on every gateway, every other scenario on its own
SHIPPED = [(path, gateway) for path in sorted((REPO / "scenarios").rglob("*.yaml"))
           if not (path.parent.parent.name == "own-config" and kind_of_file(path))  # a gateway's own file, not a scenario
           for gateway in (["envoy", "haproxy", "nginx", "litellm"] if path.parent.name == "compare"
                           else [load_scenario(path).gateway.kind])]


@pytest.mark.parametrize(("path", "gateway"), SHIPPED, ids=lambda p: str(p).split("scenarios/")[-1])
def test_no_shipped_scenario_writes_a_duration_without_a_unit_or_expects_promised_never(path: Path,
                                                                                       gateway: str) -> None:
    scenario = load_scenario(path, gateway)
    found = [f for f in lint_text(scenario, path.read_text(), str(path))
             if f.trap in ("scenario.unitless-duration", "promise.never-under-promised")]
    assert found == []


# -- the promised windows, before a run ------------------------------------------------------

def test_validate_prints_each_faults_promised_windows_for_the_chosen_gateway() -> None:
    path = REPO / "scenarios" / "compare" / "reset.yaml"
    code, out, _ = invoke("validate", str(path))
    assert code == 0
    assert "promised windows (envoy; from the nominal load" in out
    assert "reset_peer@chat[0] (at 4s for 7s; load: " in out and "requests/s from 3 users (nominal" in out
    detect = next(line for line in out.splitlines() if line.strip().startswith("detect "))
    assert "after the fault's start: active check:" in detect and "unhealthy_threshold 2" in detect
    assert any(line.strip().startswith("recover ") and "after the fault's end: " in line for line in out.splitlines())
    code, out, _ = invoke("validate", "--gateway", "nginx", str(path))
    assert code == 0 and "promised windows (nginx;" in out and "passive: max_fails 1" in out
    code, out, _ = invoke("lint", "--windows", "--gateway", "nginx", str(path))
    assert code == 0 and "promised windows (nginx;" in out


def test_validate_prints_never_and_not_computed_with_why() -> None:
    code, out, _ = invoke("validate", str(REPO / "scenarios" / "process-kill.yaml"))
    assert code == 0
    assert "recover not computed: the replica comes back when the supervisor's restart is ready" in out
    assert "after the restarted process is ready: active check:" in out
    code, out, _ = invoke("validate", str(REPO / "scenarios" / "traps" / "nginx-single-server.yaml"))
    assert code == 0 and "detect  never: 'chat' has a single server" in out
