"""stall_detected on synthetic journals: streams stalled before their first token, timed at the fakes' answers."""

from __future__ import annotations

from typing import Any

from harness.expectations import Verdict
from harness.promise.stall import stall_window
from harness.promise.window import Never, Window
from harness.scenario import parse_scenario
from tests.unit.test_expectations import T0, Run

STALL = '  - {kind: llm_fault, mode: stall_first_token, target: "chat[0]", at: 5s, for: 8s}\n'
LABEL = "llm_fault:stall_first_token@chat[0]"
LITELLM = "name: t\ngateway: {kind: litellm, request_timeout: 5s, litellm: {stream_timeout: 1500ms}}\n"


def stall_run(expect: str, gateway: str = LITELLM) -> Run:
    """chat[0]'s streams stall from 5 s to 13 s; the scenario's gateway is ``gateway`` (its first line(s))."""
    run = Run(expect, faults=STALL)
    run.text = run.text.replace("name: t\n", gateway)
    run.events[0]["text"] = run.text
    return run.fault(5.0, 13.0, label=LABEL, kind="llm_fault").attempt_logs()


def stalled(run: Run, t: float, request_id: str, held: float | None, replica: str = "chat[0]") -> Run:
    """A try of ``request_id`` whose headers went out at ``t`` and that sent no token; the gateway let go of it
    ``held`` seconds later (None: the journal never saw it end)."""
    event: dict[str, Any] = {"type": "attempt.answer", "ts": T0 + t, "replica": replica, "request_id": request_id,
                             "status": 200, "tokens": 0}
    if held is not None:
        event["ended"] = T0 + t + held
    run.events.append(event)
    return run


def two_stalls(expect: str, first: float = 1.52, second: float = 1.55, **kwargs: Any) -> Run:
    """Request a: stalled on chat[0], failed over to chat[1]. Request b: stalled on chat[0], told 408."""
    run = stall_run(expect, **kwargs)
    stalled(run, 6.01, "a", first).request(6.0, latency=first + 0.1, id="a", kind="chat_stream", replica="chat[1]")
    stalled(run, 7.01, "b", second).request(7.0, latency=second + 0.05, id="b", kind="chat_stream", status=408,
                                            error="http_4xx", replica=None)
    run.request(8.0, id="c", kind="chat", replica="chat[0]")  # a plain completion: chat[0] still answers those
    return run.finish()


def verdict(run: Run) -> Verdict:
    return run.verdict()


def test_stall_detected_passes_when_each_stalled_stream_is_let_go_of_in_time_and_its_client_served_or_told() -> None:
    v = verdict(two_stalls('{kind: stall_detected, target: "chat[0]", within: 2s}'))
    assert v.passed is True, v.detail
    assert v.measured == "1.550s" and v.bound == "≤ 2s" and abs((v.measured_value or 0) - 1.55) < 1e-3
    assert v.detail.startswith("2 streams of chat[0] stalled before their first token during "
                               f"{LABEL}; the gateway let go of them 1.520s to 1.550s after their headers went out")
    assert "1 failed over (a whole answer from another try)" in v.detail and "1 told (http_4xx, 408)" in v.detail
    # promised: LiteLLM's stream_timeout 1.5 s
    v = verdict(two_stalls('{kind: stall_detected, target: "chat[0]", within: promised}'))
    assert v.passed is True, v.detail
    assert v.bound.startswith("in [1.4s, 1.5s]") and "stream_timeout (1.5s)" in v.detail


def test_stall_detected_fails_late_early_never_or_when_the_client_gave_up_first() -> None:
    late = verdict(two_stalls('{kind: stall_detected, target: "chat[0]", within: 1530ms}'))
    assert late.passed is False and "1 held longer than 1.530s, e.g. request b at chat[0]" in late.detail
    late = verdict(two_stalls('{kind: stall_detected, target: "chat[0]", within: promised}', second=2.5))
    assert late.passed is False and "held longer than 2.200s" in late.detail, late.detail
    # let go of long before the configured 1.5 s: not the gateway's stream timeout at work
    early = verdict(two_stalls('{kind: stall_detected, target: "chat[0]", within: promised}', first=0.6))
    assert early.passed is False and "1 let go of before the configured timeout could have fired" in early.detail
    # a duration has no lower side: the same run passes against 2s
    assert verdict(two_stalls('{kind: stall_detected, target: "chat[0]", within: 2s}', first=0.6)).passed is True
    # never let go of while the journal lasted
    run = stall_run('{kind: stall_detected, target: "chat[0]", within: 2s}')
    v = verdict(stalled(run, 6.01, "a", None).request(6.0, latency=9.0, id="a", kind="chat_stream",
                                                      error="timeout", status=None, replica=None).finish())
    assert v.passed is False and v.measured == "never" and "(1 never)" in v.detail
    assert "1 ended by the client giving up first (load.request_timeout)" in v.detail
    # the client's own timeout ended it, in time for the bound: still a failure of the gateway
    run = stall_run('{kind: stall_detected, target: "chat[0]", within: 2s}')
    v = verdict(stalled(run, 6.01, "a", 1.0).request(6.0, latency=1.0, id="a", kind="chat_stream",
                                                     error="timeout", status=None, replica=None).finish())
    assert v.passed is False and "the client's own timeout" in v.detail
    # a try still held when the load ended, whose client request the journal lacks: the load's end cut it
    run = two_stalls('{kind: stall_detected, target: "chat[0]", within: promised}')
    v = verdict(stalled(run, 12.5, "z", 7.6))
    assert v.passed is True and "1 more still held when the load ended, not judged" in v.detail, v.detail
    run = stall_run('{kind: stall_detected, target: "chat[0]", within: promised}')
    v = verdict(stalled(run, 12.9, "z", 7.5).finish())
    assert v.passed is False and v.measured == "n/a" and "still held when the load ended" in v.detail
    # nothing stalled: nothing to judge
    run = stall_run('{kind: stall_detected, target: "chat[0]", within: 2s}').request(6.0, id="a", replica="chat[0]")
    v = verdict(run.finish())
    assert v.passed is False and v.measured == "n/a" and v.detail.startswith("no stream of chat[0] stalled")
    # promised, where the configuration promises nothing ends the stall (Envoy without a route timeout)
    v = verdict(two_stalls('{kind: stall_detected, target: "chat[0]", within: promised}',
                           gateway="name: t\ngateway: {kind: envoy, request_timeout: 0s}\n"))
    assert v.passed is False and v.measured == "n/a" and "promises nothing ends the stall" in v.detail


def test_stall_window_comes_from_each_gateways_stream_timeout() -> None:
    def window(gateway: str) -> Window | Never:
        scenario = parse_scenario(stall_run("{kind: error_rate, window: run, max: 1}", gateway).text, "t.yaml")
        promise = stall_window(scenario, scenario.faults[0])
        assert isinstance(promise, Window | Never)
        return promise

    envoy = window("name: t\ngateway: {kind: envoy, request_timeout: 3s, retries: {per_try_timeout: 1s}}\n")
    assert isinstance(envoy, Window) and (envoy.earliest, envoy.latest) == (2.9, 3.0)  # per_try_timeout: no part
    litellm = window("name: t\ngateway: {kind: litellm, request_timeout: 4s}\n")
    assert isinstance(litellm, Window) and litellm.latest == 4.0 and "timeout (request_timeout)" in litellm.how
    assert window(LITELLM).latest == 1.5  # type: ignore[union-attr]
    assert isinstance(window("name: t\ngateway: {kind: envoy, request_timeout: 0s}\n"), Never)
