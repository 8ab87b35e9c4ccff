"""HAProxy's, nginx's and LiteLLM's promised windows, from the scenario's numbers (harness/promise/)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from harness.promise import FORMULAS, detection_window, haproxy, litellm, nginx, recovery_window
from harness.promise.envoy import ARRIVAL_SLACK, CHECK_OVERHEAD
from harness.promise.load import LoadFacts, nominal_facts
from harness.promise.window import Never, Unknown, Window
from harness.gateways import GATEWAYS
from harness.scenario import Scenario, parse_scenario

FACTS = LoadFacts(0.0, 90.0, 9, "measured")


def scenario(gateway: str, fault: str, replicas: int = 3) -> Scenario:
    return parse_scenario(
        "name: t\n"
        f"gateway: {gateway}\n"
        f"upstreams:\n  - {{name: chat, replicas: {replicas}}}\n"
        "load: {users: 9, duration: 40s}\n"
        f"faults:\n  - {fault}\n", "x.yaml")


def window(promise: object) -> Window:
    assert isinstance(promise, Window), promise
    return promise


def test_every_gateway_has_promise_formulas() -> None:
    assert set(FORMULAS) == set(GATEWAYS)


# -- HAProxy ------------------------------------------------------------------------------

HAPROXY = ("{kind: haproxy, panic_threshold: 0, health_check: {interval: 2s, timeout: 500ms, "
           "unhealthy_threshold: 3, healthy_threshold: 2}")
RESET = '{kind: reset_peer, target: "chat[0]", at: 20s, for: 8s}'


def test_haproxy_counts_every_failed_check_at_fastinter() -> None:
    s = scenario(HAPROXY + ", haproxy: {fastinter: 500ms, downinter: 1s}}", RESET)
    d = window(detection_window(s, s.faults[0]))
    assert (d.earliest, d.latest) == pytest.approx((2 * 0.5, 2.0 + 2 * 0.5 + 3 * CHECK_OVERHEAD))
    r = window(recovery_window(s, s.faults[0]))
    assert (r.earliest, r.latest) == pytest.approx((0.5, 1.0 + 0.5 + 2 * CHECK_OVERHEAD))


def test_haproxy_bad_status_is_an_ordinary_failed_check_and_spread_widens_the_window() -> None:
    s = scenario(HAPROXY + ", haproxy: {spread_checks: 10}}",
                 '{kind: llm_fault, mode: health_fail, target: "chat[0]", at: 20s, for: 8s}')
    d = window(detection_window(s, s.faults[0]))
    assert (d.earliest, d.latest) == pytest.approx((2 * 2.0, 2.0 * 1.1 + 2 * 2.0 * 1.1 + 3 * CHECK_OVERHEAD))


def test_haproxy_blackhole_checks_wait_for_the_check_timeout() -> None:
    s = scenario(HAPROXY + "}", '{kind: process_freeze, target: "chat[0]", at: 20s, for: 8s}')
    # A check that gets no answer fails after max(timeout check 0.5s, min(timeout connect 1s, inter 2s)) = 1s.
    assert haproxy.check_time_limit(s) == pytest.approx(1.0)
    d = window(detection_window(s, s.faults[0]))
    assert d.earliest == pytest.approx(3 * 1.0 + 2 * 2.0)
    r = window(recovery_window(s, s.faults[0]))
    assert r.latest == pytest.approx(1.0 + 2.0 + 2.0 + 2 * CHECK_OVERHEAD)
    longer = scenario(HAPROXY.replace("timeout: 500ms", "timeout: 1500ms") + "}", '{kind: process_freeze, '
                      'target: "chat[0]", at: 20s, for: 8s}')
    assert haproxy.check_time_limit(longer) == pytest.approx(1.5)


def test_haproxy_start_up_state_allows_a_single_failed_check() -> None:
    s = scenario(HAPROXY + "}", '{kind: reset_peer, target: "chat[0]", at: 0s, for: 8s}')
    d = window(detection_window(s, s.faults[0]))
    assert d.earliest == 0.0 and "start-up state" in d.how
    assert haproxy.first_checks_done_by(s) == pytest.approx(2.0 + 1.0)  # inter + a check's time limit
    # The same fault 3.1s in, or 0s in a run whose gateway was up 3s before the load: past the start-up state.
    later = scenario(HAPROXY + "}", '{kind: reset_peer, target: "chat[0]", at: 3.1s, for: 8s}')
    assert window(detection_window(later, later.faults[0])).earliest == pytest.approx(2 * 2.0)  # (fall − 1)·inter
    up_before = replace(nominal_facts(s, "chat"), gateway_up=3.0)
    assert window(detection_window(s, s.faults[0], up_before)).earliest == pytest.approx(2 * 2.0)  # (fall − 1)·inter


def test_haproxy_observe_marks_down_at_the_error_limit() -> None:
    s = scenario("{kind: haproxy, panic_threshold: 0, health_check: {path: /health, interval: 2s}, "
                 "outlier_detection: {consecutive_5xx: 3}}",
                 '{kind: llm_fault, mode: inference_fail, status: 500, target: "chat[0]", at: 20s, for: 8s}')
    d = window(detection_window(s, s.faults[0], FACTS))
    assert (d.earliest, d.latest) == pytest.approx((0.0, 9 / 90 + ARRIVAL_SLACK * 3 * 3 / 90))
    r = window(recovery_window(s, s.faults[0], FACTS))
    assert r.latest == pytest.approx(2.0 + 2.0 + 2 * CHECK_OVERHEAD)  # downinter, then fastinter: rise 2
    layer4 = scenario("{kind: haproxy, panic_threshold: 0, health_check: {path: /health, interval: 2s}, "
                      "outlier_detection: {consecutive_5xx: 3}, haproxy: {observe: layer4}}",
                      '{kind: llm_fault, mode: inference_fail, status: 500, target: "chat[0]", at: 20s, for: 8s}')
    assert isinstance(detection_window(layer4, layer4.faults[0], FACTS), Never)


# -- nginx ---------------------------------------------------------------------------------

NGINX = "{kind: nginx, panic_threshold: 0, health_check: null, outlier_detection: {consecutive_5xx: 2, base_ejection_time: 5s}}"


def test_nginx_marks_a_server_down_at_max_fails_and_readmits_after_fail_timeout() -> None:
    s = scenario(NGINX, '{kind: down, target: "chat[0]", at: 5s, for: 8s}')
    d = window(detection_window(s, s.faults[0], FACTS))
    assert (d.earliest, d.latest) == pytest.approx((0.0, 9 / 90 + ARRIVAL_SLACK * 2 * 3 / 90))
    r = window(recovery_window(s, s.faults[0], FACTS))
    service = 0.02 + 16 / 400 + 0.005
    assert r.latest == pytest.approx(5.0 + nginx.CLOCK_RESOLUTION + 9 / 90 + ARRIVAL_SLACK * 3 / 90 + service)


def test_nginx_never_marks_down_a_single_server_or_an_uncounted_status() -> None:
    single = scenario(NGINX, '{kind: down, target: "chat[0]", at: 5s, for: 8s}', replicas=1)
    promise = detection_window(single, single.faults[0])
    assert isinstance(promise, Never) and "single server" in promise.why
    assert isinstance(recovery_window(single, single.faults[0]), Never)
    off = scenario("{kind: nginx, panic_threshold: 0, health_check: null}", '{kind: down, target: "chat[0]", at: 5s, for: 8s}')
    assert isinstance(detection_window(off, off.faults[0]), Never)  # no outlier_detection: max_fails 0


def test_nginx_blackhole_detection_can_come_early_by_the_requests_in_flight() -> None:
    """A request in flight when the blackhole began times out up to one request time (users / rate before
    the fault) earlier than the read timeout (measured: 1.969s with a 2s read timeout)."""
    s = scenario(NGINX.replace("panic_threshold: 0", "panic_threshold: 0, request_timeout: 2s"),
                 '{kind: timeout, target: "chat[0]", at: 5s, for: 8s}')
    d = window(detection_window(s, s.faults[0], FACTS))
    assert d.earliest == pytest.approx(2.0 - 9 / 90)
    assert "in flight" in d.how


def test_nginx_blackhole_outlasting_the_fault_is_never_detected_in_it() -> None:
    s = scenario(NGINX, '{kind: timeout, target: "chat[0]", at: 5s, for: 3s}')  # request_timeout 15s > 3s
    promise = detection_window(s, s.faults[0])
    assert isinstance(promise, Never) and "before the earliest detection" in promise.why


# -- LiteLLM -------------------------------------------------------------------------------

LITELLM_HC = "{kind: litellm, panic_threshold: 0, health_check: {interval: 2s, timeout: 1s}}"
LITELLM_COOL = "{kind: litellm, panic_threshold: 0, health_check: null, outlier_detection: {consecutive_5xx: 2, base_ejection_time: 10s}}"


def test_litellm_health_checks_are_chat_completions() -> None:
    s = scenario(LITELLM_HC, '{kind: llm_fault, mode: inference_fail, target: "chat[0]", at: 5s, for: 8s}')
    d = window(detection_window(s, s.faults[0]))
    r = 1.0 + litellm.ROUND_OVERHEAD  # a round: every check cut at the check timeout, plus the round's own time
    assert (d.earliest, d.latest) == pytest.approx((0.0, r + 2.0 + r))
    shallow = scenario(LITELLM_HC, '{kind: llm_fault, mode: health_fail, target: "chat[0]", at: 5s, for: 8s}')
    assert isinstance(detection_window(shallow, shallow.faults[0]), Never)


def test_litellm_window_is_two_rounds_and_the_interval_between_them() -> None:
    # A round under way may have passed the deployment just before the fault; the next one starts
    # health_check_interval after it ENDS and writes its verdicts when its slowest check ends.
    s = scenario(LITELLM_HC, '{kind: reset_peer, target: "chat[0]", at: 5s, for: 8s}')
    r = 1.0 + litellm.ROUND_OVERHEAD
    d, back = window(detection_window(s, s.faults[0])), window(recovery_window(s, s.faults[0]))
    assert (d.earliest, d.latest) == pytest.approx((0.0, 2 * r + 2.0))
    assert (back.earliest, back.latest) == pytest.approx((0.0, 2 * r + 2.0))
    for promise in (d, back):
        assert promise.margin == pytest.approx(litellm.LITELLM_MARGIN)  # the observer's GET goes through the proxy
        assert f"check timeout 1s + {litellm.ROUND_OVERHEAD:g}s round overhead" in promise.how
        assert "health_check_interval 2s" in promise.how and "to answer the observer" in promise.how


def test_litellm_check_that_times_out_fails_after_the_check_timeout() -> None:
    s = scenario(LITELLM_HC, '{kind: timeout, target: "chat[0]", at: 5s, for: 8s}')
    d = window(detection_window(s, s.faults[0]))
    # the verdict is written when the timed-out check ends; the observer may stamp it up to PROBE_DELAY early
    assert d.earliest == pytest.approx(1.0 - litellm.PROBE_DELAY)
    assert d.latest == pytest.approx(2 * (1.0 + litellm.ROUND_OVERHEAD) + 2.0)


def test_litellm_failed_checks_start_cooldowns_that_delay_recovery() -> None:
    both = ("{kind: litellm, panic_threshold: 0, health_check: {interval: 1s, timeout: 1s}, "
            "outlier_detection: {consecutive_5xx: 2, base_ejection_time: 10s}}")
    s = scenario(both, '{kind: reset_peer, target: "chat[0]", at: 5s, for: 8s}')
    back = window(recovery_window(s, s.faults[0], FACTS))
    assert back.latest == pytest.approx(1.0 + litellm.ROUND_OVERHEAD + 10.0)
    assert "a failed check's cooldown" in back.how


def test_litellm_cools_down_for_refused_connections_as_measured() -> None:
    s = scenario(LITELLM_COOL, '{kind: down, target: "chat[0]", at: 5s, for: 8s}')
    d = window(detection_window(s, s.faults[0], FACTS))
    assert (d.earliest, d.latest) == pytest.approx((0.0, 9 / 90 + ARRIVAL_SLACK * 2 * 3 / 90))
    assert "Connection error." in d.how


def test_litellm_cooldown_on_5xx_lasts_cooldown_time() -> None:
    s = scenario(LITELLM_COOL, '{kind: llm_fault, mode: error_status, status: 503, target: "chat[0]", at: 5s, for: 8s}')
    d = window(detection_window(s, s.faults[0], FACTS))
    assert (d.earliest, d.latest) == pytest.approx((0.0, 9 / 90 + ARRIVAL_SLACK * 2 * 3 / 90))
    r = window(recovery_window(s, s.faults[0], FACTS))
    assert (r.earliest, r.latest) == (0.0, 10.0)


def test_litellm_timeouts_are_not_guessed() -> None:
    s = scenario(LITELLM_COOL, '{kind: timeout, target: "chat[0]", at: 5s, for: 20s}')
    assert isinstance(detection_window(s, s.faults[0], FACTS), Unknown)


def test_haproxy_sees_a_toxiproxy_blackhole_as_an_empty_answer_at_once() -> None:
    # measured: L7RSP "invalid response" within 2ms, not a check timeout; a frozen process times out
    s = scenario(HAPROXY + "}", '{kind: timeout, target: "chat[0]", at: 20s, for: 8s}')
    d = window(detection_window(s, s.faults[0]))
    assert d.earliest == pytest.approx(2 * 2.0) and d.latest == pytest.approx(2.0 + 3 * 1.0 + 2 * 2.0 + 3 * CHECK_OVERHEAD)
    frozen = scenario(HAPROXY + "}", '{kind: process_freeze, target: "chat[0]", at: 20s, for: 8s}')
    assert window(detection_window(frozen, frozen.faults[0])).earliest == pytest.approx(3 * 1.0 + 2 * 2.0)
