"""`within: promised`, and the promised window beside every detection/recovery verdict (summary.json)."""

from __future__ import annotations

from typing import Any

import pytest

from harness.errors import ScenarioError
from harness.judge import judge_events
from harness.report.data import RunData
from harness.scenario import parse_scenario

T0 = 1_700_000_000.0
REPLICAS = ("chat[0]", "chat[1]", "chat[2]")
HC = "{path: /health, interval: 1s, timeout: 500ms, unhealthy_threshold: 2, healthy_threshold: 2, no_traffic_interval: 1s}"


def run_header(text: str) -> list[dict[str, Any]]:
    """A run's first events: the scenario, the stack with chat[0..2], every replica healthy, the load started at T0."""
    return [
        {"type": "run.started", "ts": T0 - 3, "scenario": "t", "file": "x.yaml", "text": text, "seed": 1,
         "replicas": list(REPLICAS)},
        {"type": "stack.ready", "ts": T0 - 2, "endpoints": {"replicas": {
            r: {"proxy_url": f"http://127.0.0.1:{31000 + i}"} for i, r in enumerate(REPLICAS)}}},
        *({"type": "health", "ts": T0 - 1, "replica": r, "healthy": True, "flags": ""} for r in REPLICAS),
        {"type": "load.started", "ts": T0},
    ]


def events(gateway: str, fault: str, expect: list[str], unhealthy_at: float | None, healthy_at: float | None,
           fault_kind: str = "reset_peer", load_end: float = 19) -> list[dict[str, Any]]:
    text = ("name: t\n"
            f"gateway: {gateway}\n"
            "upstreams:\n  - {name: chat, replicas: 3}\n"
            "load: {users: 8, duration: 20s}\n"
            f"faults:\n  - {fault}\n"
            "expect:\n" + "".join(f"  - {e}\n" for e in expect))
    label = parse_scenario(text, "x.yaml").faults[0].label
    out = run_header(text)
    out += [{"type": "request", "ts": T0 + i * 0.05, "kind": "chat", "latency": 0.05, "status": 200, "error": None,
             "replica": REPLICAS[i % 3]} for i in range(380)]
    fields = {"fault": label, "kind": fault_kind, "target": "chat[0]", "replicas": ["chat[0]"], "params": {}}
    out.append({"type": "fault.started", "ts": T0 + 5, **fields})
    if unhealthy_at is not None:
        out.append({"type": "health", "ts": T0 + unhealthy_at, "replica": "chat[0]", "healthy": False,
                    "flags": "/failed_active_hc"})
    out.append({"type": "fault.cleared", "ts": T0 + 13, **fields})
    if healthy_at is not None:
        out.append({"type": "health", "ts": T0 + healthy_at, "replica": "chat[0]", "healthy": True, "flags": ""})
    out += [{"type": "load.finished", "ts": T0 + load_end},
            {"type": "run.finished", "ts": T0 + load_end + 1, "outcome": "complete"}]
    return sorted(out, key=lambda e: e["ts"])


RESET = '{kind: reset_peer, target: "chat[0]", at: 5s, for: 8s}'
PROMISED = ['{kind: upstream_unhealthy, target: "chat[0]", within: promised}',
            '{kind: upstream_healthy, target: "chat[0]", within: promised}']


def test_inside_the_promised_window_passes() -> None:
    judgement = judge_events(events(f"{{health_check: {HC}, panic_threshold: 0}}", RESET, PROMISED, 6.5, 14.6))
    detect, recover = judgement.verdicts
    assert detect.passed and recover.passed
    assert detect.bound == "in [1s, 2.04s] +200ms margin" and detect.measured == "1.500s"
    assert detect.detail.endswith("its configuration promised [1s, 2.04s] +200ms margin: inside it")
    assert detect.bound_value == pytest.approx(2.24) and recover.measured == "1.600s"


@pytest.mark.parametrize(("unhealthy_at", "where"), [(5.4, "earlier than it"), (7.5, "later than it")])
def test_outside_the_promised_window_fails_either_way(unhealthy_at: float, where: str) -> None:
    judgement = judge_events(events(f"{{health_check: {HC}, panic_threshold: 0}}", RESET, PROMISED, unhealthy_at, 14.6))
    detect = judgement.verdicts[0]
    assert not detect.passed and detect.detail.endswith(where)


NEVER_GATEWAY = "{health_check: null, panic_threshold: 0, outlier_detection: {max_ejection_percent: 10}}"


@pytest.mark.parametrize("unhealthy_at", [None, 6.0])
def test_within_promised_fails_against_a_never_promise_whatever_the_gateway_did(unhealthy_at: float | None) -> None:
    judgement = judge_events(events(NEVER_GATEWAY, RESET, PROMISED[:1], unhealthy_at, None))
    (verdict,) = judgement.verdicts
    assert not verdict.passed and verdict.bound == "in never"
    assert "max_ejection_percent 10%" in verdict.detail and "write upstream_unhealthy with within: never" in verdict.detail
    assert ("and it never did" if unhealthy_at is None else "yet it did") in verdict.detail


def test_within_promised_recovery_fails_against_a_never_promise() -> None:
    (verdict,) = judge_events(events(NEVER_GATEWAY, RESET, PROMISED[1:], None, None)).verdicts
    assert not verdict.passed and "promises it never acts" in verdict.detail


def test_within_never_passes_only_if_the_gateway_never_acted() -> None:
    never = ['{kind: upstream_unhealthy, target: "chat[0]", within: never}']
    (kept,) = judge_events(events(NEVER_GATEWAY, RESET, never, None, None)).verdicts
    assert kept.passed and kept.bound == "never" and kept.measured == "never"
    assert kept.detail.startswith("chat[0] looked healthy to the gateway until")
    (acted,) = judge_events(events(NEVER_GATEWAY, RESET, never, 6.0, None)).verdicts
    assert not acted.passed and acted.measured == "1.000s" and acted.detail.endswith("expected never")
    # the explicit form is judged on what happened, whatever the configuration promises
    (window,) = judge_events(events(f"{{health_check: {HC}, panic_threshold: 0}}", RESET, never, None, None)).verdicts
    assert window.passed


def test_never_readmitted_in_a_load_that_ended_before_the_window_is_not_observed() -> None:
    # recovery promised [1s, 2.04s] +200ms; the load ends 2s after the fault: too short to tell, and the verdict fails
    run = RunData.from_events(events(f"{{health_check: {HC}, panic_threshold: 0}}", RESET, PROMISED, 6.5, None,
                                     load_end=15))
    recover = run.summary()["expectations"][1]
    assert not recover["passed"] and recover["measured"] == "never"
    assert recover["detail"].endswith("not observed: the load ended 2s after the fault, the promise allows up to 2.24s")
    assert run.summary()["faults"][0]["promise_held"] == {"detection": "yes", "recovery": "-"}
    # the same with a load that outlasts the window: missed
    missed = RunData.from_events(events(f"{{health_check: {HC}, panic_threshold: 0}}", RESET, PROMISED, 6.5, None))
    assert missed.summary()["expectations"][1]["detail"].endswith("and it never did")
    assert missed.summary()["faults"][0]["promise_held"] == {"detection": "yes", "recovery": "NO"}


def test_an_uncomputed_promise_cannot_be_judged() -> None:
    bandwidth = '{kind: bandwidth, rate_kbps: 1, target: "chat[0]", at: 5s, for: 8s}'
    judgement = judge_events(events(f"{{health_check: {HC}, panic_threshold: 0}}", bandwidth, PROMISED[:1], 6.5, 14.6,
                                    fault_kind="bandwidth"))
    (verdict,) = judgement.verdicts
    assert not verdict.passed and verdict.measured == "n/a"
    assert "within: promised, but the promised window is not known" in verdict.detail


def test_every_detection_and_recovery_verdict_carries_its_promise_in_the_summary() -> None:
    expect = ['{kind: upstream_unhealthy, target: "chat[0]", within: 3s}',
              '{kind: upstream_healthy, target: "chat[0]", within: 3s}',
              "{kind: error_rate, window: run, max: 1.0}"]
    run = RunData.from_events(events(f"{{health_check: {HC}, panic_threshold: 0}}", RESET, expect, 6.5, 14.6))
    summary = run.summary()
    detect, recover, rate = summary["expectations"]
    assert detect["bound"] == "≤ 3s" and detect["promised"]["text"] == "[1s, 2.04s] +200ms margin"
    assert recover["promised"]["earliest"] == 1.0 and "healthy_threshold 2" in recover["promised"]["how"]
    assert "promised" not in rate
    (fault,) = summary["faults"]
    assert fault["promised_detection"]["latest"] == pytest.approx(2.04)
    assert fault["promise_held"] == {"detection": "yes", "recovery": "yes"}


def test_within_accepts_promised_never_or_a_duration_and_says_so() -> None:
    base = ("name: t\nupstreams:\n  - {name: chat, replicas: 3}\nload: {duration: 20s}\n"
            f"faults:\n  - {RESET}\nexpect:\n")
    scenario = parse_scenario(base + '  - {kind: upstream_unhealthy, target: "chat[0]", within: promised}\n', "x.yaml")
    assert scenario.expect[0].params()["within"] == "promised"
    with pytest.raises(ScenarioError) as bad:
        parse_scenario(base + '  - {kind: upstream_unhealthy, target: "chat[0]", within: soon}\n', "x.yaml")
    assert "x.yaml:8" in str(bad.value) and "expect[0].within: expected 'never', 'promised' or a duration" in str(bad.value)
    with pytest.raises(ScenarioError) as recovery:  # never readmitted is not a thing to expect
        parse_scenario(base + '  - {kind: upstream_healthy, target: "chat[0]", within: never}\n', "x.yaml")
    assert "expect[0].within: expected 'promised' or a duration" in str(recovery.value)
