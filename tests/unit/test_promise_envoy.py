"""Envoy's promised detection and recovery windows, from the scenario's numbers (harness/promise/)."""

from __future__ import annotations

import pytest

from harness.observer import SAMPLE_INTERVAL
from harness.promise import detection_window, envoy, recovery_window
from harness.promise.load import LoadFacts, nominal_facts
from harness.promise.window import (
    CONTROL_API_MARGIN, OBSERVER_MARGIN, SCHEDULING_MARGIN, Never, Unknown, Window, earliest_of,
)
from harness.scenario import Scenario, parse_scenario

OVERHEAD = envoy.CHECK_OVERHEAD
HC = "{path: /health, interval: 1s, timeout: 500ms, unhealthy_threshold: 2, healthy_threshold: 2, no_traffic_interval: 1s}"


def scenario(fault: str, gateway: str = f"{{health_check: {HC}, panic_threshold: 0}}", replicas: int = 3,
             pools: str = "") -> Scenario:
    return parse_scenario(
        "name: t\n"
        f"gateway: {gateway}\n"
        f"upstreams:\n  - {{name: chat, replicas: {replicas}}}\n{pools}"
        "load: {users: 8, duration: 30s}\n"
        f"faults:\n  - {fault}\n", "x.yaml")


def window(promise: object) -> Window:
    assert isinstance(promise, Window), promise
    return promise


def test_observer_margin_is_the_observers_sampling_period() -> None:
    assert OBSERVER_MARGIN == SAMPLE_INTERVAL


def test_reset_detection_is_threshold_minus_one_to_threshold_intervals() -> None:
    s = scenario('{kind: reset_peer, target: "chat[0]", at: 5s, for: 8s}')
    w = window(detection_window(s, s.faults[0]))
    assert (w.earliest, w.latest) == pytest.approx((1.0, 2.0 + 2 * OVERHEAD))
    assert "unhealthy_threshold 2" in w.how
    assert w.contains(1.48) and w.contains(1.98) and not w.contains(0.9) and not w.contains(2.5)


def test_reset_recovery_is_healthy_threshold_checks() -> None:
    s = scenario('{kind: reset_peer, target: "chat[0]", at: 5s, for: 8s}')
    w = window(recovery_window(s, s.faults[0]))
    assert (w.earliest, w.latest) == pytest.approx((1.0, 2.0 + 2 * OVERHEAD))


def test_blackhole_checks_each_take_the_timeout_and_a_hung_check_delays_recovery() -> None:
    s = scenario('{kind: timeout, target: "chat[*]", at: 5s, for: 8s}')
    d = window(detection_window(s, s.faults[0]))
    assert (d.earliest, d.latest) == pytest.approx((2 * 0.5 + 1.0, 1.0 + 2 * 0.5 + 1.0 + 2 * OVERHEAD))
    r = window(recovery_window(s, s.faults[0]))
    assert (r.earliest, r.latest) == pytest.approx((1.0, 0.5 + 1.0 + 1.0 + 2 * OVERHEAD))


def test_health_endpoint_status_ejects_on_the_first_check() -> None:
    s = scenario('{kind: llm_fault, mode: health_fail, status: 503, target: "chat[0]", at: 5s, for: 8s}')
    w = window(detection_window(s, s.faults[0]))
    assert (w.earliest, w.latest) == pytest.approx((0.0, 1.0 + OVERHEAD))
    assert "unhealthy_threshold is ignored" in w.how
    # made through the fake's control API: it acts when the fake has handled the call
    assert w.margin == pytest.approx(OBSERVER_MARGIN + SCHEDULING_MARGIN + CONTROL_API_MARGIN)
    reset = scenario('{kind: reset_peer, target: "chat[0]", at: 5s, for: 8s}')
    assert window(detection_window(reset, reset.faults[0])).margin == pytest.approx(OBSERVER_MARGIN + SCHEDULING_MARGIN)


def test_an_expected_status_is_never_detected() -> None:
    hc = HC.replace("}", ", expected_statuses: [200, 503]}")
    s = scenario('{kind: llm_fault, mode: health_fail, status: 503, target: "chat[0]", at: 5s, for: 8s}',
                 gateway=f"{{health_check: {hc}, panic_threshold: 0}}")
    assert isinstance(detection_window(s, s.faults[0]), Never)


def test_a_pending_no_traffic_timer_delays_the_first_check() -> None:
    hc = HC.replace("no_traffic_interval: 1s", "no_traffic_interval: 10s")
    s = scenario('{kind: reset_peer, target: "chat[0]", at: 2s, for: 8s}', gateway=f"{{health_check: {hc}}}")
    w = window(detection_window(s, s.faults[0]))
    assert (w.earliest, w.latest) == pytest.approx((1.0, (10 - 2) + 1.0 + 2 * OVERHEAD))
    assert "no_traffic_interval 10s" in w.how
    late = window(detection_window(s, s.faults[0], LoadFacts(0.5, 100.0, 8, "measured")))
    assert late.latest == pytest.approx((10 + 0.5 - 2) + 1.0 + 2 * OVERHEAD)  # the first request came 0.5s in


def test_a_pool_without_traffic_checks_at_the_no_traffic_interval_throughout() -> None:
    hc = HC.replace("no_traffic_interval: 1s", "no_traffic_interval: 4s")
    s = scenario('{kind: reset_peer, target: "embed[0]", at: 20s, for: 8s}', gateway=f"{{health_check: {hc}}}",
                 pools="  - {name: embed, replicas: 2}\n")
    assert nominal_facts(s, "embed").first_traffic is None
    w = window(detection_window(s, s.faults[0]))
    assert (w.earliest, w.latest) == pytest.approx((4.0, 4.0 + 4.0 + 2 * OVERHEAD))
    r = window(recovery_window(s, s.faults[0]))
    assert (r.earliest, r.latest) == pytest.approx((4.0, 8.0 + 2 * OVERHEAD))


def test_outlier_detection_that_can_eject_nothing_promises_never() -> None:
    od = "{consecutive_5xx: 3, interval: 1s, base_ejection_time: 5s, max_ejection_percent: 10}"
    s = scenario('{kind: reset_peer, target: "chat[0]", at: 3s, for: 8s}', gateway=f"{{health_check: null, outlier_detection: {od}}}")
    promise = detection_window(s, s.faults[0])
    assert isinstance(promise, Never) and "max_ejection_percent 10%" in promise.why
    assert isinstance(recovery_window(s, s.faults[0]), Never)


def test_outlier_detection_at_the_loads_rate() -> None:
    od = "{consecutive_5xx: 3, interval: 1s, base_ejection_time: 5s, max_ejection_percent: 34}"
    s = scenario('{kind: reset_peer, target: "chat[0]", at: 3s, for: 8s}', gateway=f"{{health_check: null, outlier_detection: {od}}}")
    facts = LoadFacts(0.0, 90.0, 8, "measured")
    w = window(detection_window(s, s.faults[0], facts))
    assert w.earliest == 0.0
    # the 8 requests in flight at the fault's start, then 3 errors on every 3rd request at 90/s
    assert w.latest == pytest.approx(8 / 90.0 + envoy.ARRIVAL_SLACK * 3 * 3 / 90.0)
    r = window(recovery_window(s, s.faults[0], facts))
    # 8s of fault: ejections of 5s then 10s: the last one lasts at most 10s, ended at the next 1s sweep
    assert (r.earliest, r.latest) == (0.0, 11.0)


def test_outlier_detection_of_a_blackhole_waits_for_the_try_timeout() -> None:
    od = "{consecutive_gateway_failure: 3, consecutive_5xx: null, interval: 1s, max_ejection_percent: 50}"
    gw = f"{{health_check: null, outlier_detection: {od}, retries: {{per_try_timeout: 400ms}}}}"
    s = scenario('{kind: latency, latency: 2s, target: "chat[1]", at: 5s, for: 8s}', gateway=gw)
    w = window(detection_window(s, s.faults[0], LoadFacts(0.0, 120.0, 8, "measured")))
    slowed = 8 / (8 / 120.0 + 0.4 / 3)  # users stuck 0.4s on every third request
    # A try that began up to one request time before the fault, and whose answer the fault held up,
    # times out that much earlier (measured: 0.371s with a 0.4s per-try timeout).
    assert w.earliest == pytest.approx(0.4 - 8 / slowed)
    assert w.latest == pytest.approx(0.4 + 8 / slowed + envoy.ARRIVAL_SLACK * 3 * 3 / slowed)


def test_no_gateway_timeout_means_a_blackhole_is_never_seen_by_outlier_detection() -> None:
    od = "{consecutive_5xx: 3, interval: 1s, max_ejection_percent: 50}"
    s = scenario('{kind: timeout, target: "chat[1]", at: 5s, for: 8s}',
                 gateway=f"{{health_check: null, outlier_detection: {od}, request_timeout: 0s}}")
    assert isinstance(detection_window(s, s.faults[0]), Never)


def test_active_checks_and_outlier_detection_merge_to_whichever_acts_first() -> None:
    od = "{consecutive_5xx: 3, interval: 1s, max_ejection_percent: 50}"
    s = scenario('{kind: reset_peer, target: "chat[0]", at: 5s, for: 8s}',
                 gateway=f"{{health_check: {HC}, outlier_detection: {od}}}")
    facts = LoadFacts(0.0, 90.0, 8, "measured")
    merged = window(detection_window(s, s.faults[0], facts))
    active = window(envoy.active_detection(s, s.faults[0], facts))
    passive = window(envoy.passive_detection(s, s.faults[0], facts))
    assert merged.earliest == min(active.earliest, passive.earliest)
    assert merged.latest == min(active.latest, passive.latest)
    assert "whichever acts first" in merged.how


def test_a_fault_active_checks_miss_is_readmitted_by_the_next_passing_check() -> None:
    od = "{consecutive_5xx: 3, interval: 1s, base_ejection_time: 10s, max_ejection_percent: 100}"
    s = scenario('{kind: llm_fault, mode: inference_fail, target: "chat[0]", at: 3s, for: 9s}',
                 gateway=f"{{health_check: {HC}, outlier_detection: {od}}}")
    assert isinstance(window(detection_window(s, s.faults[0])), Window)
    r = window(recovery_window(s, s.faults[0]))
    assert (r.earliest, r.latest) == pytest.approx((0.0, 2 * (1.0 + OVERHEAD)))  # measured: the 2nd check
    assert "un-ejects" in r.how


@pytest.mark.parametrize("fault", [
    '{kind: reset_peer, target: "chat[0]", at: 5s, for: 8s, toxicity: 0.5}',
    '{kind: llm_fault, mode: error_status, rate: 0.5, target: "chat[0]", at: 5s, for: 8s}',
    '{kind: bandwidth, rate_kbps: 1, target: "chat[0]", at: 5s, for: 8s}',
])
def test_effects_that_are_not_modelled_are_unknown_not_guessed(fault: str) -> None:
    s = scenario(fault)
    assert isinstance(detection_window(s, s.faults[0]), Unknown)


def test_a_killed_replica_is_readmitted_after_its_restart_not_after_the_fault() -> None:
    s = scenario('{kind: process_kill, target: "chat[0]", at: 5s, for: 10s}')
    assert isinstance(recovery_window(s, s.faults[0]), Unknown)
    w = window(recovery_window(s, s.faults[0], after="restart_ready"))
    assert (w.earliest, w.latest) == pytest.approx((1.0, 2.0 + 2 * OVERHEAD))


def test_earliest_of_lists_never_reasons_and_keeps_unknown_honest() -> None:
    a, b = Window(1.0, 2.0, "a"), Window(0.5, 3.0, "b")
    merged = window(earliest_of([a, b]))
    assert (merged.earliest, merged.latest) == (0.5, 2.0)
    never = earliest_of([Never("x"), Never("y")])
    assert isinstance(never, Never) and never.why == "x; y"
    # An uncomputed mechanism might act any time: no earliest bound, so no window (not [0, 2s]).
    unknown = earliest_of([a, Unknown("z")])
    assert isinstance(unknown, Unknown) and unknown.why.startswith("z; that mechanism might act before") \
        and "(a)" in unknown.why
    assert window(earliest_of([a, Never("n")])) == a


def test_window_text_and_json() -> None:
    w = Window(1.0, 2.04, "how")
    assert w.text() == "[1s, 2.04s] +200ms margin"
    assert w.to_json() == {"earliest": 1.0, "latest": 2.04, "margin": 0.2, "text": w.text(), "how": "how"}
    assert Never("n").to_json()["never"] is True and Unknown("u").text() == "not computed"


def test_nominal_rate_from_the_replicas_speed() -> None:
    s = scenario('{kind: reset_peer, target: "chat[0]", at: 5s, for: 8s}')
    facts = nominal_facts(s, "chat")
    service = 0.02 + 16 / 400 + 0.005  # ttft + max_tokens at tokens_per_s + the gateway
    assert facts.first_traffic == 0.0 and facts.rate == pytest.approx(8 / service)


def test_measured_rate_before_the_first_fault_else_over_the_run() -> None:
    from harness.promise.load import measured_facts
    from harness.timeline import FaultWindow, Request, Timeline

    s = scenario('{kind: reset_peer, target: "chat[0]", at: 5s, for: 8s}')
    fault = FaultWindow("f", "reset_peer", "chat[0]", ("chat[0]",), 5.0, 13.0)
    steady = Timeline(0.0, 20.0, ["chat[0]"], requests=[Request(0.1 + i * 0.05, 0.05, "chat", 200, None, "chat[0]")
                                                        for i in range(300)], faults=[fault])
    facts = measured_facts(s, "chat", steady)
    assert facts.first_traffic == pytest.approx(0.1) and facts.source == "measured before the first fault"
    assert facts.rate == pytest.approx(98 / 4.9, rel=0.02)  # 98 requests started in [0.1, 5)
    late = Timeline(0.0, 20.0, ["chat[0]"], requests=[Request(4.5 + i * 0.5, 0.05, "chat", 200, None, "chat[0]")
                                                      for i in range(30)], faults=[fault])
    facts = measured_facts(s, "chat", late)
    assert facts.source == "measured over the run" and facts.rate == pytest.approx(30 / 14.5)
    assert measured_facts(s, "chat", Timeline(0.0, 20.0, [], faults=[fault])).source.startswith("nominal")


def test_the_merge_window_does_not_move_the_windows_of_the_admin_view() -> None:
    # Measured (docs/lint.md, Envoy's merge window): the admin API, which the journal records, shows a
    # health change at once; only the workers' load balancers get it up to update_merge_window later.
    fault = '{kind: reset_peer, target: "chat[*]", at: 5s, for: 8s}'
    plain = scenario(fault)
    merging = scenario(fault, f"{{health_check: {HC}, panic_threshold: 0, envoy: {{update_merge_window: 1s}}}}")
    assert merging.gateway.envoy.update_merge_window == 1.0
    assert detection_window(merging, merging.faults[0]) == detection_window(plain, plain.faults[0])
    assert recovery_window(merging, merging.faults[0]) == recovery_window(plain, plain.faults[0])
