"""Passive detection under retries, per gateway (harness/promise/): does a try the gateway retries on
another replica still count toward its passive health? HAProxy 2.6: no (only a request's last try
reaches observe); Envoy, nginx and LiteLLM: yes. Measured: docs/gateways.md, "Passive detection under
retries"."""

from __future__ import annotations

from typing import Any

import pytest

from harness.judge import judge_events
from harness.lint import lint_text
from harness.promise import detection_window, recovery_window
from harness.promise.envoy import ARRIVAL_SLACK
from harness.promise.haproxy import passive_detection as haproxy_passive
from harness.promise.load import LoadFacts
from harness.promise.window import Never, Window
from harness.scenario import Scenario, parse_scenario

from .test_promise_verdicts import REPLICAS, T0, run_header

FACTS = LoadFacts(0.0, 90.0, 9, "measured")
HC = "{path: /health, interval: 1s, timeout: 1s, unhealthy_threshold: 2, healthy_threshold: 2}"
OD = "{consecutive_5xx: 3, base_ejection_time: 2s, max_ejection_percent: 100}"
RETRY_5XX = "{num_retries: 1, retry_on: [5xx]}"
ERROR_500 = '{kind: llm_fault, mode: error_status, status: 500, target: "%s", at: 20s, for: 10s}'


def gateway(kind: str, retries: str | None = RETRY_5XX, extra: str = "") -> str:
    return (f"{{kind: {kind}, panic_threshold: 0, health_check: {HC}, outlier_detection: {OD}, "
            f"retries: {retries or 'null'}{extra}}}")


def scenario(gw: str, fault: str = ERROR_500 % "chat[0]", expect: list[str] | None = None) -> Scenario:
    return parse_scenario(scenario_text(gw, fault, expect), "x.yaml")


def scenario_text(gw: str, fault: str, expect: list[str] | None = None) -> str:
    return ("name: t\n"
            f"gateway: {gw}\n"
            "upstreams:\n  - {name: chat, replicas: 3}\n"
            "load: {users: 9, duration: 40s}\n"
            f"faults:\n  - {fault}\n"
            + ("expect:\n" + "".join(f"  - {e}\n" for e in expect) if expect else ""))


def window(promise: object) -> Window:
    assert isinstance(promise, Window), promise
    return promise


# -- HAProxy 2.6: only a request's last try reaches observe ----------------------------------------

def test_haproxy_never_hears_of_a_500_it_retries_on_another_server() -> None:
    s = scenario(gateway("haproxy"))
    promise = detection_window(s, s.faults[0], FACTS)
    assert isinstance(promise, Never)
    assert "last try" in promise.why and "retry-on 500" in promise.why and "#2679" in promise.why
    assert isinstance(recovery_window(s, s.faults[0], FACTS), Never)  # nothing marks it DOWN


def test_haproxy_counts_the_500_without_retries_or_when_retry_on_leaves_it_out() -> None:
    expected = (0.0, 9 / 90 + ARRIVAL_SLACK * 3 * 3 / 90)
    for retries in (None, "{num_retries: 1, retry_on: [connect-failure, reset]}",
                    "{num_retries: 0, retry_on: [5xx]}"):
        s = scenario(gateway("haproxy", retries))
        d = window(detection_window(s, s.faults[0], FACTS))
        assert (d.earliest, d.latest) == pytest.approx(expected), retries


def test_haproxy_counts_a_refused_connection_before_retrying_it() -> None:
    """A failed connection reaches observe in back_handle_st_cer(), before its retry (conn-failure)."""
    s = scenario(gateway("haproxy"), '{kind: down, target: "chat[0]", at: 20s, for: 10s}')
    assert isinstance(haproxy_passive(s, s.faults[0], FACTS), Window)


def test_haproxy_never_hears_of_a_reset_it_retries_as_an_empty_response() -> None:
    reset = '{kind: reset_peer, target: "chat[0]", at: 20s, for: 10s}'
    retried = scenario(gateway("haproxy", "{num_retries: 1, retry_on: [reset]}"), reset)
    promise = haproxy_passive(retried, retried.faults[0], FACTS)
    assert isinstance(promise, Never) and "retry-on empty-response" in promise.why
    counted = scenario(gateway("haproxy", "{num_retries: 1, retry_on: [connect-failure]}"), reset)
    assert isinstance(haproxy_passive(counted, counted.faults[0], FACTS), Window)


def test_haproxy_layer4_counts_failed_connections_only() -> None:
    layer4 = gateway("haproxy", None, extra=", haproxy: {observe: layer4}")
    reset = scenario(layer4, '{kind: reset_peer, target: "chat[0]", at: 20s, for: 10s}')
    promise = haproxy_passive(reset, reset.faults[0], FACTS)
    assert isinstance(promise, Never) and "connection succeeds" in promise.why
    down = scenario(layer4, '{kind: down, target: "chat[0]", at: 20s, for: 10s}')
    assert isinstance(haproxy_passive(down, down.faults[0], FACTS), Window)


def test_haproxy_with_every_replica_broken_counts_each_requests_last_try() -> None:
    s = scenario(gateway("haproxy"), ERROR_500 % "chat[*]")
    d = window(detection_window(s, s.faults[0], FACTS))
    assert "only each request's last try" in d.how and d.earliest == 0.0


def test_haproxy_lint_names_the_trap_at_retry_on_and_only_where_it_bites() -> None:
    source = scenario_text(gateway("haproxy"), ERROR_500 % "chat[0]")
    (finding,) = [f for f in lint_text(parse_scenario(source, "x.yaml"), source, "x.yaml")
                  if f.trap == "haproxy.observe-retries"]
    assert finding.severity == "error" and finding.field == "gateway.retries.retry_on" and finding.line == 2
    assert "covers 500" in finding.message and "last try" in finding.message and "#2679" in finding.message
    quiet = [gateway("haproxy", None), gateway("haproxy", "{num_retries: 1, retry_on: [connect-failure]}"),
             gateway("haproxy", extra=", haproxy: {observe: layer4}")]
    for gw in quiet:
        text = scenario_text(gw, ERROR_500 % "chat[0]")
        assert not [f for f in lint_text(parse_scenario(text, "x.yaml"), text, "x.yaml")
                    if f.trap == "haproxy.observe-retries"], gw
    everyone = scenario_text(gateway("haproxy"), ERROR_500 % "chat[*]")  # each request's last try counts
    assert not [f for f in lint_text(parse_scenario(everyone, "x.yaml"), everyone, "x.yaml")
                if f.trap == "haproxy.observe-retries"]


# -- Envoy, nginx, LiteLLM: every retried try counts ---------------------------------------------

@pytest.mark.parametrize("kind", ["envoy", "nginx", "litellm"])
def test_a_retried_500_still_counts(kind: str) -> None:
    with_retries = scenario(gateway(kind))
    d = window(detection_window(with_retries, with_retries.faults[0], FACTS))
    assert d.earliest == 0.0 and d.latest < with_retries.faults[0].duration


def test_envoy_and_litellm_windows_do_not_depend_on_retries() -> None:
    for kind in ("envoy", "litellm"):
        plain, retried = scenario(gateway(kind, None)), scenario(gateway(kind))
        assert window(detection_window(plain, plain.faults[0], FACTS)) == \
            window(detection_window(retried, retried.faults[0], FACTS)), kind


def test_nginx_counts_a_500_only_when_it_retries_it() -> None:
    plain = scenario(gateway("nginx", None))
    promise = detection_window(plain, plain.faults[0], FACTS)
    assert isinstance(promise, Never) and "without retries" in promise.why
    no_tries = scenario(gateway("nginx", "{num_retries: 0, retry_on: [5xx]}"))
    assert isinstance(detection_window(no_tries, no_tries.faults[0], FACTS), Never)
    retried = scenario(gateway("nginx"))
    assert isinstance(detection_window(retried, retried.faults[0], FACTS), Window)


def test_nginx_counts_what_it_retries_even_outside_the_outlier_counter() -> None:
    """consecutive_gateway_failure lists 502-504, but retry_on 5xx retries (and so counts) a 500 too."""
    gw = ("{kind: nginx, panic_threshold: 0, health_check: null, outlier_detection: {consecutive_5xx: null, "
          "consecutive_gateway_failure: 3, base_ejection_time: 2s, max_ejection_percent: 100}, retries: %s}")
    counted = scenario(gw % RETRY_5XX)
    assert isinstance(detection_window(counted, counted.faults[0], FACTS), Window)
    uncounted = scenario(gw % "{num_retries: 1, retry_on: [gateway-error]}")
    promise = detection_window(uncounted, uncounted.faults[0], FACTS)
    assert isinstance(promise, Never) and "http_500 is not a failure nginx retries" in promise.why


# -- the verdicts these promises give: each can fail ------------------------------------------------

PROMISED = '{kind: upstream_unhealthy, target: "chat[0]", within: promised}'


def journal(gw: str, unhealthy_after: float | None, flags: str) -> list[dict[str, Any]]:
    """A run: 20 requests/s for 40s, chat[0] answering 500 from 20s to 30s, and maybe marked unhealthy."""
    text = scenario_text(gw, ERROR_500 % "chat[0]", [PROMISED])
    label = parse_scenario(text, "x.yaml").faults[0].label
    out = [*run_header(text),
           *({"type": "request", "ts": T0 + i * 0.05, "kind": "chat", "latency": 0.05, "status": 200, "error": None,
              "replica": REPLICAS[i % 3]} for i in range(780))]
    fields = {"fault": label, "kind": "llm_fault", "target": "chat[0]", "replicas": ["chat[0]"],
              "params": {"mode": "error_status", "status": 500}}
    out += [{"type": "fault.started", "ts": T0 + 20, **fields}, {"type": "fault.cleared", "ts": T0 + 30, **fields}]
    if unhealthy_after is not None:
        out.append({"type": "health", "ts": T0 + 20 + unhealthy_after, "replica": "chat[0]", "healthy": False,
                    "flags": flags})
    out += [{"type": "load.finished", "ts": T0 + 39}, {"type": "run.finished", "ts": T0 + 40, "outcome": "complete"}]
    return sorted(out, key=lambda e: e["ts"])


def test_haproxy_marking_it_down_despite_retries_breaks_its_never_promise() -> None:
    (verdict,) = judge_events(journal(gateway("haproxy"), 0.3, "DOWN")).verdicts
    assert not verdict.passed and verdict.bound == "in never" and "yet it did" in verdict.detail


def test_haproxy_without_retries_must_detect_inside_its_window() -> None:
    gw = gateway("haproxy", None)
    (inside,) = judge_events(journal(gw, 0.3, "DOWN")).verdicts
    assert inside.passed, inside.detail
    (late,) = judge_events(journal(gw, 3.0, "DOWN")).verdicts
    assert not late.passed and late.detail.endswith("later than it")
    (never,) = judge_events(journal(gw, None, "")).verdicts
    assert not never.passed and never.measured == "never"


@pytest.mark.parametrize(("kind", "flags"), [("envoy", "/failed_outlier_check"),
                                              ("nginx", "temporarily disabled (max_fails reached)")])
def test_a_gateway_that_counts_retried_errors_must_detect_inside_its_window(kind: str, flags: str) -> None:
    (inside,) = judge_events(journal(gateway(kind), 0.3, flags)).verdicts
    assert inside.passed, inside.detail
    (late,) = judge_events(journal(gateway(kind), 3.0, flags)).verdicts
    assert not late.passed and late.detail.endswith("later than it")
    (never,) = judge_events(journal(gateway(kind), None, "")).verdicts
    assert not never.passed and never.measured == "never"
