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


def events(gateway: str, fault: str, expect: list[str], unhealthy_at: float | None, healthy_at: float | None,
           fault_kind: str = "reset_peer") -> list[dict[str, Any]]:
    text = ("name: t\n"
            f"gateway: {gateway}\n"
            "upstreams:\n  - {name: chat, replicas: 3}\n"
            "load: {users: 8, duration: 20s}\n"
            f"faults:\n  - {fault}\n"
            "expect:\n" + "".join(f"  - {e}\n" for e in expect))
    label = parse_scenario(text, "x.yaml").faults[0].label
    out: list[dict[str, Any]] = [
        {"type": "run.started", "ts": T0 - 3, "scenario": "t", "file": "x.yaml", "text": text, "seed": 1,
         "replicas": list(REPLICAS)},
        {"type": "stack.ready", "ts": T0 - 2, "endpoints": {"replicas": {
            r: {"proxy_url": f"http://127.0.0.1:{31000 + i}"} for i, r in enumerate(REPLICAS)}}},
        *({"type": "health", "ts": T0 - 1, "replica": r, "healthy": True, "flags": ""} for r in REPLICAS),
        {"type": "load.started", "ts": T0},
    ]
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
    out += [{"type": "load.finished", "ts": T0 + 19}, {"type": "run.finished", "ts": T0 + 20, "outcome": "complete"}]
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


def test_a_never_promise_passes_only_if_the_gateway_never_acted() -> None:
    gateway = "{health_check: null, panic_threshold: 0, outlier_detection: {max_ejection_percent: 10}}"
    never = judge_events(events(gateway, RESET, PROMISED, None, None))
    assert [v.passed for v in never.verdicts] == [True, True]
    assert never.verdicts[0].bound == "in never" and never.verdicts[0].measured == "never"
    assert "max_ejection_percent 10%" in never.verdicts[0].detail and never.verdicts[0].detail.endswith("never did")
    acted = judge_events(events(gateway, RESET, PROMISED, 6.0, None))
    assert not acted.verdicts[0].passed and acted.verdicts[0].detail.endswith("yet it did")


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


def test_within_accepts_promised_or_a_duration_and_says_so() -> None:
    base = ("name: t\nupstreams:\n  - {name: chat, replicas: 3}\nload: {duration: 20s}\n"
            f"faults:\n  - {RESET}\nexpect:\n")
    scenario = parse_scenario(base + '  - {kind: upstream_unhealthy, target: "chat[0]", within: promised}\n', "x.yaml")
    assert scenario.expect[0].params()["within"] == "promised"
    with pytest.raises(ScenarioError) as bad:
        parse_scenario(base + '  - {kind: upstream_unhealthy, target: "chat[0]", within: soon}\n', "x.yaml")
    assert "x.yaml:8" in str(bad.value) and "expect[0].within: expected 'promised' or a duration" in str(bad.value)
