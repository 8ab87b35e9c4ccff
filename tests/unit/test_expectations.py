"""Every expectation kind judged on synthetic journals, as harness/journal.py writes them."""

from __future__ import annotations

from typing import Any

import pytest

from harness.expectations import EXPECTATIONS, Verdict
from harness.expectations.no_traffic_to import HOST_SET_LAG
from tests.unit.test_diagnose import test_expectation_fails_without_a_journalled_diagnosis_or_on_error as \
    diagnosis_missing_or_failed
from tests.unit.test_diagnose import test_expectation_judges_the_journalled_diagnosis as diagnosis_named_right_or_wrong
from harness.judge import Judgement, judge_events
from harness.timeline import build_timeline, percentile

T0 = 1_700_000_000.0  # wall-clock time of load.started; every t below is seconds after it
REPLICAS = ("chat[0]", "chat[1]", "chat[2]")
RESET_0 = '  - {kind: reset_peer, target: "chat[0]", at: 5s, for: 8s}\n'
RESET_0_LABEL = "reset_peer@chat[0]"


def proxy_address(replica: str) -> str:
    """The host:port the gateway dials for a replica (its Toxiproxy proxy) in these runs."""
    return f"127.0.0.1:{31000 + int(replica.split('[')[1].rstrip(']'))}"


class Run:
    """A synthetic run: a scenario with the given expectations and faults, then its events."""

    def __init__(self, *expect: str, faults: str = RESET_0, replicas: tuple[str, ...] = REPLICAS) -> None:
        self.text = (
            "name: t\n"
            "upstreams:\n  - {name: chat, replicas: 3}\n"
            "load: {duration: 20s}\n"
            "faults:\n" + faults
            + "expect:\n" + "".join(f"  - {e}\n" for e in expect)
        )
        self.events: list[dict[str, Any]] = [
            {"type": "run.started", "ts": T0 - 3, "scenario": "t", "file": "x.yaml", "text": self.text,
             "seed": 1, "replicas": list(replicas)},
            {"type": "stack.ready", "ts": T0 - 2, "endpoints": {"replicas": {
                r: {"url": f"http://127.0.0.1:{30000 + i}", "proxy": r, "proxy_url": f"http://{proxy_address(r)}"}
                for i, r in enumerate(replicas)}}},
        ]
        for replica in replicas:  # the observer's first sample: everyone healthy before the load
            self.health(-1.0, replica, True)
        self.events.append({"type": "load.started", "ts": T0})

    def health(self, t: float, replica: str, healthy: bool, flags: str = "") -> Run:
        flags = flags or ("" if healthy else "/failed_active_health_check")
        self.events.append({"type": "health", "ts": T0 + t, "replica": replica, "healthy": healthy, "flags": flags})
        return self

    def fault(self, start: float, end: float | None, label: str = RESET_0_LABEL, kind: str = "reset_peer",
              target: str = "chat[0]", replicas: tuple[str, ...] = ("chat[0]",)) -> Run:
        fields = {"fault": label, "kind": kind, "target": target, "replicas": list(replicas), "params": {}}
        self.events.append({"type": "fault.started", "ts": T0 + start, **fields})
        if end is not None:
            self.events.append({"type": "fault.cleared", "ts": T0 + end, **fields})
        return self

    def request(self, t: float, latency: float = 0.05, *, error: str | None = None, status: int | None = 200,
                replica: str | None = "chat[1]", kind: str = "chat", body: str | None = None,
                upstream: str | None = None, id: str | None = None) -> Run:
        """``replica`` is the identity header of the replica that answered; ``upstream`` the
        address the gateway says it picked (set on the gateway's own error replies too)."""
        event: dict[str, Any] = {"type": "request", "ts": T0 + t, "kind": kind, "latency": latency,
                                 "status": status, "error": error, "replica": replica}
        if id is not None:
            event["id"] = id
        if body is not None:
            event["body"] = body
        if upstream is not None:
            event["upstream"] = upstream
        self.events.append(event)
        return self

    def attempt_logs(self, gateway: str | None = None, gateway_kind: str = "envoy") -> Run:
        """The run kept the fakes' attempt logs (and the gateway's log of each try, named ``gateway``)."""
        self.events[1]["attempt_logs"] = {"replica": True, "gateway": gateway, "gateway_kind": gateway_kind}
        return self

    def attempt(self, t: float, replica: str = "chat[0]", request_id: str | None = None, *, source: str = "replica",
                health: bool = False, status: int | None = None, flags: str | None = None) -> Run:
        """One try of a request at ``replica``: seen arriving by its fake, or logged by the gateway."""
        event: dict[str, Any] = {"type": "attempt", "ts": T0 + t, "source": source, "replica": replica,
                                 "request_id": request_id}
        if source == "replica":
            event.update(health=health, method="POST" if not health else "GET",
                         path="/health" if health else "/v1/chat/completions")
        else:
            event.update(upstream=proxy_address(replica), status=status, flags=flags)
        self.events.append(event)
        return self

    def requests(self, start: float, end: float, step: float = 0.5, **kwargs: Any) -> Run:
        """One request every ``step`` seconds in [start, end)."""
        n = round((end - start) / step)
        for i in range(n):
            self.request(start + i * step, **kwargs)
        return self

    def finish(self, t: float = 20.0, outcome: str | None = "complete") -> Run:
        self.events.append({"type": "load.finished", "ts": T0 + t, "requests": 0, "failures": 0, "stopped": False})
        if outcome is not None:
            self.events.append({"type": "run.finished", "ts": T0 + t + 1, "outcome": outcome})
        return self

    def judge(self) -> Judgement:
        header, rest = self.events[0], self.events[1:]
        return judge_events([header, *sorted(rest, key=lambda e: e["ts"])])

    def verdict(self, index: int = 0) -> Verdict:
        return self.judge().verdicts[index]


def detected_run(*expect: str, unhealthy_at: float = 6.5, healthy_at: float | None = 14.5) -> Run:
    """The replica-reset story: chat[0] resets from 5s to 13s, is marked unhealthy, then healthy again."""
    run = Run(*expect).fault(5.0, 13.0).health(unhealthy_at, "chat[0]", False)
    if healthy_at is not None:
        run.health(healthy_at, "chat[0]", True)
    return run


# -- upstream_unhealthy ------------------------------------------------------------------

UNHEALTHY = '{kind: upstream_unhealthy, target: "chat[0]", within: 3s}'


def test_upstream_unhealthy_passes_when_detected_in_time() -> None:
    v = detected_run(UNHEALTHY, unhealthy_at=6.5).finish().verdict()
    assert v.kind == "upstream_unhealthy"
    assert v.passed is True
    assert v.measured_value == pytest.approx(1.5)
    assert v.bound_value == 3.0
    assert v.measured == "1.500s"
    assert v.bound == "≤ 3s"
    assert v.detail == f"chat[0] was marked unhealthy 1.500s after {RESET_0_LABEL} began"


def test_upstream_unhealthy_fails_when_detected_late() -> None:
    v = detected_run(UNHEALTHY, unhealthy_at=9.25).finish().verdict()
    assert v.passed is False
    assert v.measured_value == pytest.approx(4.25)
    assert v.detail == f"chat[0] was marked unhealthy 4.250s after {RESET_0_LABEL} began; bound 3s"


def test_upstream_unhealthy_never_detected() -> None:
    v = Run(UNHEALTHY).fault(5.0, 13.0).requests(0, 20).finish().verdict()
    assert v.passed is False
    assert v.measured == "never"
    assert v.measured_value is None
    assert v.detail == f"chat[0] still looked healthy to the gateway when {RESET_0_LABEL} ended, 8.000s after it began"


def test_upstream_unhealthy_after_the_fault_ended_counts_as_never() -> None:
    v = detected_run(UNHEALTHY, unhealthy_at=13.5, healthy_at=None).finish().verdict()
    assert (v.passed, v.measured) == (False, "never")


def test_upstream_unhealthy_of_a_whole_pool_takes_the_slowest_replica() -> None:
    faults = '  - {kind: timeout, target: "chat[*]", at: 5s, for: 8s}\n'
    run = Run('{kind: upstream_unhealthy, target: "chat[*]", within: 3s}', faults=faults)
    run.fault(5.0, 13.0, label="timeout@chat[*]", kind="timeout", target="chat[*]", replicas=REPLICAS)
    run.health(6.0, "chat[0]", False).health(7.75, "chat[2]", False).health(6.5, "chat[1]", False)
    v = run.finish().verdict()
    assert v.passed is True
    assert v.measured_value == pytest.approx(2.75)
    # and if one replica is never marked, the verdict names it
    run2 = Run('{kind: upstream_unhealthy, target: "chat[*]", within: 3s}', faults=faults)
    run2.fault(5.0, 13.0, label="timeout@chat[*]", kind="timeout", target="chat[*]", replicas=REPLICAS)
    run2.health(6.0, "chat[0]", False).health(6.5, "chat[2]", False)
    v2 = run2.finish().verdict()
    assert (v2.passed, v2.measured) == (False, "never")
    assert v2.detail.startswith("chat[1] still looked healthy")


# -- upstream_healthy -------------------------------------------------------------------

HEALTHY = '{kind: upstream_healthy, target: "chat[0]", within: 3s}'


def test_upstream_healthy_is_measured_from_the_fault_end() -> None:
    v = detected_run(HEALTHY, healthy_at=14.5).finish().verdict()
    assert v.passed is True
    assert v.measured_value == pytest.approx(1.5)  # 14.5 - 13, not 14.5 - 5
    assert v.detail == f"chat[0] was healthy again 1.500s after {RESET_0_LABEL} ended"


def test_upstream_healthy_fails_when_readmitted_late() -> None:
    v = detected_run(HEALTHY, healthy_at=17.0).finish().verdict()
    assert v.passed is False
    assert v.measured_value == pytest.approx(4.0)
    assert v.detail.endswith("; bound 3s")


def test_upstream_healthy_never_readmitted() -> None:
    v = detected_run(HEALTHY, healthy_at=None).finish().verdict()
    assert v.passed is False
    assert v.measured == "never"
    assert v.measured_value is None
    assert v.detail == f"chat[0] was still unhealthy when the run ended, 7.000s after {RESET_0_LABEL} ended"


def test_upstream_healthy_fails_when_the_replica_was_never_ejected() -> None:
    v = Run(HEALTHY).fault(5.0, 13.0).finish().verdict()
    assert v.passed is False
    assert v.measured == "n/a"
    assert v.detail == (f"chat[0] was never marked unhealthy after {RESET_0_LABEL} began, "
                        "so there was no readmission to measure")


# -- error_rate -------------------------------------------------------------------------

def test_error_rate_passes_under_the_bound() -> None:
    run = Run("{kind: error_rate, window: baseline, max: 0.0}").fault(5.0, 13.0).requests(0, 5).finish()
    v = run.verdict()
    assert v.passed is True
    assert v.measured_value == 0.0
    assert v.measured == "0.00%"
    assert v.detail == "0 of 10 requests failed between 0.000s and 5.000s"


def test_error_rate_fails_over_the_bound_and_names_the_error_kinds() -> None:
    run = Run("{kind: error_rate, window: fault, max: 0.1}").fault(5.0, 13.0).requests(5, 13, step=1.0)
    run.request(5.5, error="reset", status=None, replica="chat[0]").request(6.5, error="reset", status=None)
    run.request(7.5, error="http_5xx", status=503)
    v = run.finish().verdict()
    assert v.passed is False
    assert v.measured_value == pytest.approx(3 / 11)
    assert v.measured == "27.27%"
    assert v.detail == "3 of 11 requests failed between 5.000s and 13.000s (2 reset, 1 http_5xx)"


def test_error_rate_with_no_requests_is_unjudgeable_not_an_exception() -> None:
    run = Run("{kind: error_rate, window: baseline, max: 0.0}").fault(5.0, 13.0).requests(6, 20).finish()
    v = run.verdict()
    assert v.passed is False
    assert v.measured == "n/a"
    assert v.measured_value is None
    assert v.detail == "no request started between 0.000s and 5.000s"


def test_baseline_excludes_requests_in_flight_when_the_first_fault_starts() -> None:
    run = Run("{kind: error_rate, window: baseline, max: 0.0}").fault(5.0, 13.0)
    run.request(4.0, latency=0.5)                                  # ends 4.5: baseline
    run.request(4.5, latency=0.5)                                  # ends exactly at 5.0: baseline
    run.request(4.9, latency=0.5, error="reset", status=None)      # still in flight at 5.0: not baseline
    v = run.finish().verdict()
    assert v.passed is True
    assert v.detail == "0 of 2 requests failed between 0.000s and 5.000s"


def test_explicit_window_counts_requests_that_start_in_from_to() -> None:
    run = Run("{kind: error_rate, window: {from: 16s, to: 18s}, max: 0.0}").fault(5.0, 13.0)
    run.request(15.99, error="reset", status=None)   # before: not counted
    run.request(16.0).request(17.99, latency=3.0)    # in (latency does not matter outside baseline)
    run.request(18.0, error="reset", status=None)    # at `to`: not counted
    v = run.finish().verdict()
    assert v.passed is True
    assert v.detail == "0 of 2 requests failed between 16.000s and 18.000s"


def test_recovery_and_run_windows() -> None:
    run = Run("{kind: error_rate, window: recovery, max: 0.2}", "{kind: error_rate, window: run, max: 0.05}")
    run.fault(5.0, 13.0).requests(0, 20, step=1.0).request(13.5, error="timeout", status=None).finish()
    recovery, whole = run.judge().verdicts
    assert recovery.detail == "1 of 8 requests failed between 13.000s and 20.000s (1 timeout)"
    assert recovery.passed is True
    assert whole.detail == "1 of 21 requests failed between 0.000s and 20.000s (1 timeout)"
    assert whole.passed is True  # 1/21 = 4.76%
    assert whole.measured_value == pytest.approx(1 / 21)


def test_after_detection_when_never_detected_fails_with_a_reason() -> None:
    run = Run("{kind: error_rate, window: after_detection, max: 0.01}").fault(5.0, 13.0).requests(0, 20).finish()
    v = run.verdict()
    assert v.passed is False
    assert v.measured == "n/a"
    assert v.detail == (f"the gateway never marked chat[0] unhealthy during {RESET_0_LABEL}, "
                        "so there is no after_detection window")


def test_after_detection_window_starts_at_detection() -> None:
    run = detected_run("{kind: error_rate, window: after_detection, max: 0.0}", unhealthy_at=6.5)
    run.request(6.0, error="reset", status=None, replica="chat[0]")  # before detection: not counted
    run.requests(6.5, 13.0, step=0.5).request(13.0, error="http_5xx", status=503)  # at fault end: not counted
    v = run.finish().verdict()
    assert v.passed is True
    assert v.detail == "0 of 13 requests failed between 6.500s and 13.000s"


def test_no_fault_in_the_journal_is_unjudgeable() -> None:
    v = Run("{kind: error_rate, window: fault, max: 0.0}").requests(0, 20).finish().verdict()
    assert (v.passed, v.measured, v.detail) == (False, "n/a", "no fault started in this run")


def test_fault_field_selects_the_second_fault() -> None:
    faults = ('  - {name: first, kind: reset_peer, target: "chat[0]", at: 2s, for: 3s}\n'
              '  - {name: second, kind: reset_peer, target: "chat[0]", at: 10s, for: 4s}\n')
    run = Run("{kind: error_rate, window: fault, max: 0.0, fault: second}",
              "{kind: error_rate, window: fault, max: 0.0}", faults=faults)
    run.fault(2.0, 5.0, label="first").fault(10.0, 14.0, label="second")
    run.requests(0, 20, step=1.0).request(3.5, error="reset", status=None, replica="chat[0]")
    named, default = run.finish().judge().verdicts
    assert named.passed is True
    assert named.detail == "0 of 4 requests failed between 10.000s and 14.000s"
    assert named.params == {"fault": "second", "window": "fault", "max": 0.0}
    assert default.passed is False  # without `fault:` the first fault is meant
    assert default.detail == "1 of 4 requests failed between 2.000s and 5.000s (1 reset)"


def test_fault_named_but_never_started_is_unjudgeable() -> None:
    faults = ('  - {name: first, kind: reset_peer, target: "chat[0]", at: 2s, for: 3s}\n'
              '  - {name: second, kind: reset_peer, target: "chat[0]", at: 10s, for: 4s}\n')
    run = Run("{kind: error_rate, window: fault, max: 0.0, fault: second}", faults=faults)
    v = run.fault(2.0, 5.0, label="first").requests(0, 20).finish().verdict()
    assert (v.passed, v.detail) == (False, "fault 'second' never started in this run")


def test_expectation_target_selects_the_overlapping_fault() -> None:
    faults = ('  - {kind: reset_peer, target: "chat[0]", at: 2s, for: 3s}\n'
              '  - {kind: reset_peer, target: "chat[1]", at: 10s, for: 4s}\n')
    run = Run('{kind: upstream_unhealthy, target: "chat[1]", within: 2s}', faults=faults)
    run.fault(2.0, 5.0).fault(10.0, 14.0, label="reset_peer@chat[1]", target="chat[1]", replicas=("chat[1]",))
    run.health(2.5, "chat[0]", False).health(11.5, "chat[1]", False)
    v = run.finish().verdict()
    assert v.passed is True
    assert v.measured_value == pytest.approx(1.5)
    assert v.detail == "chat[1] was marked unhealthy 1.500s after reset_peer@chat[1] began"


# -- no_traffic_to -----------------------------------------------------------------------

NO_TRAFFIC = '{kind: no_traffic_to, target: "chat[0]", window: after_detection}'


OLD_JOURNAL = ("this journal has no attempt logs (written before chaosgate kept them), so only the last try of "
               "each request was counted")


def test_no_traffic_to_passes_when_the_replica_is_routed_around_after_detection() -> None:
    run = detected_run(NO_TRAFFIC, unhealthy_at=6.5)
    run.request(5.5, error="reset", status=None, replica="chat[0]")  # before detection: does not count
    run.request(6.4, replica="chat[0]")
    run.requests(6.5, 13.0, replica="chat[1]")
    run.request(13.0, replica="chat[0]").request(15.0, replica="chat[0]")  # after the fault: does not count
    v = run.finish().verdict()
    assert v.passed is True
    assert (v.measured, v.measured_value, v.bound, v.bound_value) == ("0 attempts", 0, "0 attempts", 0)
    assert v.detail == ("no attempt reached chat[0] between 6.500s and 13.000s: 0 client requests served by or "
                        f"routed to chat[0] (0 failed); {OLD_JOURNAL}")


def test_no_traffic_to_fails_and_counts_only_requests_in_the_window() -> None:
    run = detected_run(NO_TRAFFIC, unhealthy_at=6.5)
    run.request(6.0, replica="chat[0]")  # before detection
    run.request(7.0, replica="chat[0]").request(8.0, error="reset", status=None, replica="chat[0]")
    run.request(8.5, replica="chat[2]")
    run.request(14.0, replica="chat[0]")  # after the fault
    v = run.finish().verdict()
    assert v.passed is False
    assert (v.measured, v.measured_value) == ("2 requests (last tries only)", 2)
    assert v.detail == ("2 attempts reached chat[0] in the window: 2 client requests served by or routed to chat[0] "
                        f"(1 failed); {OLD_JOURNAL}; the first 0.500s after the window began, the last 1.500s")


def test_no_traffic_to_counts_failed_attempts_the_gateway_routed_to_the_replica() -> None:
    # A reset replica never stamps its identity header; the gateway's upstream header says where it went.
    run = detected_run(NO_TRAFFIC, unhealthy_at=6.5)
    run.request(7.0, error="http_5xx", status=503, replica=None, upstream=proxy_address("chat[0]"))
    run.request(7.5, error="http_5xx", status=503, replica=None, upstream=proxy_address("chat[1]"))
    run.request(8.0, replica="chat[2]", upstream=proxy_address("chat[2]"))
    run.request(9.0, error="reset", status=None, replica=None, upstream="10.9.9.9:1")  # unknown address
    v = run.finish().verdict()
    assert v.passed is False
    assert (v.measured, v.measured_value) == ("1 requests (last tries only)", 1)
    assert v.detail.startswith("1 attempts reached chat[0] in the window: 1 client requests served by or routed "
                               "to chat[0] (1 failed)")


def test_no_traffic_to_fails_when_a_retried_requests_first_try_reached_the_replica() -> None:
    # The case: Envoy retries, chat[0] answers 503 to the first try, chat[1] serves the retry. The
    # client sees chat[1] only (both headers name the last try); chat[0]'s own log saw the first try.
    run = detected_run(NO_TRAFFIC, unhealthy_at=6.5).attempt_logs(gateway=None, gateway_kind="haproxy")
    run.attempt(7.0, "chat[0]", "r-7").attempt(7.01, "chat[1]", "r-7")
    run.request(7.0, replica="chat[1]", upstream=proxy_address("chat[1]"), id="r-7")
    run.requests(7.5, 13.0, replica="chat[1]")
    v = run.finish().verdict()
    assert v.passed is False
    assert (v.measured, v.measured_value) == ("1 attempts", 1)
    assert v.detail == (
        "1 attempts reached chat[0] in the window: 0 client requests served by or routed to chat[0] (0 failed); "
        "1 tries seen arriving by chat[0]'s own process (retries included); tries stopped on the way to chat[0] "
        "(refused or black-holed before reaching its process) are not visible on haproxy, which logs only the last "
        "try of a request; the first 0.500s after the window began, the last 0.500s; 1 of those client requests were "
        "answered by another replica after a try at chat[0], so their client saw no sign of it; "
        "e.g. request r-7 tried at chat[0] 0.500s into the window")


def test_no_traffic_to_counts_the_tries_a_network_fault_stopped_from_the_gateways_log() -> None:
    # Envoy logs each try; two were reset by Toxiproxy before reaching chat[0]'s process, one reached it.
    run = detected_run(NO_TRAFFIC, unhealthy_at=6.5).attempt_logs(gateway="envoy-upstream.jsonl")
    run.attempt(7.0, "chat[0]", "r-1", source="gateway", status=503, flags="UC")
    run.attempt(8.0, "chat[0]", "r-2", source="gateway", status=503, flags="UC")
    run.attempt(9.0, "chat[0]", "r-3", source="gateway", status=503).attempt(9.001, "chat[0]", "r-3")
    run.attempt(9.0, "chat[1]", "r-3", source="gateway", status=200)
    for t, rid in ((7.0, "r-1"), (8.0, "r-2"), (9.0, "r-3")):
        run.request(t, replica="chat[1]", upstream=proxy_address("chat[1]"), id=rid)
    v = run.finish().verdict()
    assert v.passed is False
    assert (v.measured, v.measured_value) == ("3 attempts", 3)
    assert ("1 tries seen arriving by chat[0]'s own process (retries included); 3 tries the gateway logged as "
            "sent to it (envoy-upstream.jsonl; 2 of them never reached its process: refused or cut on the way)") in v.detail
    assert "3 of those client requests were answered by another replica" in v.detail
    assert "e.g. request r-1 tried at chat[0] 0.500s into the window (503 UC), request r-2" in v.detail


def test_no_traffic_to_does_not_count_health_checks_or_tries_outside_the_window() -> None:
    run = detected_run(NO_TRAFFIC, unhealthy_at=6.5).attempt_logs(gateway="envoy-upstream.jsonl")
    run.attempt(6.0, "chat[0]", "r-0").attempt(6.0, "chat[0]", "r-0", source="gateway")  # before detection
    for t in (7.0, 8.0, 9.0):
        run.attempt(t, "chat[0]", None, health=True)  # the gateway's health checks go on
    run.attempt(13.5, "chat[0]", "r-9").attempt(13.5, "chat[0]", "r-9", source="gateway")  # after the fault
    run.attempt(8.0, "chat[1]", "r-5").attempt(8.0, "chat[1]", "r-5", source="gateway")  # another replica
    run.requests(6.5, 13.0, replica="chat[1]")
    v = run.finish().verdict()
    assert v.passed is True, v.detail
    assert v.detail == ("no attempt reached chat[0] between 6.500s and 13.000s: 0 client requests served by or "
                        "routed to chat[0] (0 failed); 0 tries seen arriving by chat[0]'s own process (retries "
                        "included); 0 tries the gateway logged as sent to it (envoy-upstream.jsonl)")


def test_no_traffic_to_counts_a_try_by_when_the_gateway_sent_it_not_when_a_frozen_replica_woke() -> None:
    # process_freeze: a try sent before detection sits in the frozen process's queue and is stamped on arrival
    # when the process wakes, inside the window; Envoy's log says when it was sent.
    run = detected_run(NO_TRAFFIC, unhealthy_at=6.5).attempt_logs(gateway="envoy-upstream.jsonl")
    run.attempt(6.2, "chat[0]", "r-1", source="gateway", status=None, flags="UT").attempt(12.9, "chat[0]", "r-1")
    run.request(6.2, replica="chat[1]", upstream=proxy_address("chat[1]"), id="r-1")
    run.requests(6.5, 13.0, replica="chat[1]")
    v = run.finish().verdict()
    assert v.passed is True, v.detail
    # Without the gateway's stamp of that try, only its arrival is known: the gateway picked the replica at some
    # moment between the request's start (before detection) and then, so it is not held against the gateway ...
    run = detected_run(NO_TRAFFIC, unhealthy_at=6.5).attempt_logs(gateway=None, gateway_kind="haproxy")
    run.attempt(12.9, "chat[0]", "r-1")
    run.request(6.2, replica="chat[1]", upstream=proxy_address("chat[1]"), id="r-1")
    run.requests(6.5, 13.0, replica="chat[1]")
    v = run.finish().verdict()
    assert v.passed is True, v.detail
    # ... but a try of a request that began inside the window counts by its arrival, and so does a retry whose
    # previous try arrived inside the window (the gateway picked chat[0] after that).
    for first_try in ((), ((6.8, "chat[1]"),)):
        run = detected_run(NO_TRAFFIC, unhealthy_at=6.5).attempt_logs(gateway=None, gateway_kind="litellm")
        for at, replica in first_try:
            run.attempt(at, replica, "r-3")
        run.attempt(6.9, "chat[0]", "r-3")
        run.request(6.7 if not first_try else 6.4, replica="chat[1]", upstream=proxy_address("chat[1]"), id="r-3")
        run.requests(6.5, 13.0, replica="chat[1]")
        v = run.finish().verdict()
        assert v.passed is False and v.measured_value == 1, (first_try, v.detail)
    # The in-flight request of a LiteLLM run (measured): started 27 ms before detection, arrived 7 ms after it.
    run = detected_run(NO_TRAFFIC, unhealthy_at=6.5).attempt_logs(gateway=None, gateway_kind="litellm")
    run.attempt(6.507, "chat[0]", "r-4")
    run.request(6.473, status=500, error="http_5xx", replica=None, upstream=proxy_address("chat[0]"), id="r-4")
    run.requests(6.5, 13.0, replica="chat[1]")
    v = run.finish().verdict()
    assert v.passed is True, v.detail
    # A retry sent inside the window still counts, although the same request's first try came before it.
    run = detected_run(NO_TRAFFIC, unhealthy_at=6.5).attempt_logs(gateway="envoy-upstream.jsonl")
    run.attempt(6.2, "chat[0]", "r-2", source="gateway", status=503).attempt(6.21, "chat[0]", "r-2")
    run.attempt(7.0, "chat[0]", "r-2", source="gateway", status=503).attempt(7.01, "chat[0]", "r-2")
    run.request(6.2, replica="chat[1]", upstream=proxy_address("chat[1]"), id="r-2")
    run.requests(6.5, 13.0, replica="chat[1]")
    v = run.finish().verdict()
    assert v.passed is False and v.measured_value == 1, v.detail


def test_no_traffic_to_does_not_count_tries_sent_while_the_gateways_routing_threads_take_up_its_ejection() -> None:
    # Measured on Envoy (docker, three stacks on 2 cores): a try sent 36 ms after its own ejection stamp, by a
    # worker thread that had not yet taken up the new host set. Tries up to HOST_SET_LAG after the stamp are
    # named, not counted; one later than that counts.
    def run_with_tries(*after: float) -> Verdict:
        run = detected_run(NO_TRAFFIC, unhealthy_at=6.5).attempt_logs(gateway="envoy-upstream.jsonl")
        for i, dt in enumerate(after):
            run.attempt(6.5 + dt, "chat[0]", f"r-{i}", source="gateway", status=503, flags="UC")
            run.request(6.5 + dt, error="http_5xx", status=503, replica=None, upstream=proxy_address("chat[0]"),
                        id=f"r-{i}")
        run.requests(6.6, 13.0, replica="chat[1]")
        return run.finish().verdict()

    inside = run_with_tries(0.001, 0.036)
    assert inside.passed is True, inside.detail
    assert inside.detail.endswith(f"; not counted: 2 tries sent in the first {HOST_SET_LAG:.3f}s after the gateway "
                                  "marked chat[0] unhealthy, while its routing threads took up the new host set")
    later = run_with_tries(0.036, HOST_SET_LAG + 0.01)
    assert later.passed is False and later.measured_value == 1, later.detail
    assert "not counted: 1 tries sent in the first" in later.detail
    assert f"the first {HOST_SET_LAG + 0.01:.3f}s after the window began" in later.detail
    # The lag is the gateway's own routing after its own stamp: other windows count from their start.
    run = detected_run('{kind: no_traffic_to, target: "chat[0]", window: fault}', unhealthy_at=6.5)
    run.attempt_logs(gateway="envoy-upstream.jsonl").attempt(5.01, "chat[0]", "r-0", source="gateway", status=503)
    assert run.finish().verdict().measured_value == 1


def test_no_traffic_to_names_requests_without_a_load_id_but_does_not_count_them() -> None:
    run = detected_run(NO_TRAFFIC, unhealthy_at=6.5).attempt_logs(gateway=None, gateway_kind="litellm")
    run.attempt(7.0, "chat[0]", None)  # e.g. a gateway's health check that is a chat completion
    v = run.finish().verdict()
    assert v.passed is True
    assert v.detail.endswith("; not counted: 1 requests without a load request id reached it (a health check that is "
                             "an ordinary request, such as LiteLLM's chat completion; a probe; or a gateway that does "
                             "not pass x-chaosgate-request on)")


def test_no_traffic_to_passes_when_failures_were_routed_elsewhere() -> None:
    run = detected_run(NO_TRAFFIC, unhealthy_at=6.5)
    run.request(7.0, error="http_5xx", status=503, replica=None, upstream=proxy_address("chat[1]"))
    run.request(7.5, error="http_5xx", status=503, replica=None)
    assert run.finish().verdict().passed is True


def test_no_traffic_to_when_never_detected_is_unjudgeable() -> None:
    v = Run(NO_TRAFFIC).fault(5.0, 13.0).requests(0, 20).finish().verdict()
    assert (v.passed, v.measured) == (False, "n/a")
    assert "no after_detection window" in v.detail


# -- traffic_to --------------------------------------------------------------------------

TRAFFIC_TO = '{kind: traffic_to, target: "chat[0]", window: fault, min_share: 0.3}'


def test_traffic_to_passes_when_the_replica_keeps_serving_in_the_window() -> None:
    run = Run(TRAFFIC_TO).fault(5.0, 13.0)
    run.requests(0.0, 5.0, replica="chat[1]")  # before the fault: does not count
    run.requests(5.0, 13.0, step=1.0, replica="chat[0]").requests(5.5, 13.0, step=1.0, replica="chat[1]")
    v = run.finish().verdict()
    assert (v.passed, v.measured, v.measured_value, v.bound_value) == (True, "50.00%", 0.5, 0.3)
    assert v.detail == "chat[0] served 8 of 16 requests between 5.000s and 13.000s"


def test_traffic_to_fails_when_the_replica_was_dropped_and_counts_only_successes() -> None:
    run = Run(TRAFFIC_TO).fault(5.0, 13.0)
    run.request(5.0, replica="chat[0]").request(5.5, error="http_5xx", status=503, replica="chat[0]")
    run.requests(6.0, 13.0, step=1.0, replica="chat[1]")
    v = run.finish().verdict()
    assert (v.passed, v.measured) == (False, "11.11%")
    assert v.detail == "chat[0] served 1 of 9 requests between 5.000s and 13.000s"


# -- latency -----------------------------------------------------------------------------

def latency_run(expect: str) -> Run:
    run = Run(expect).fault(5.0, 13.0)
    for i in range(1, 11):  # 0.1s .. 1.0s, in shuffled start order
        run.request(15.0 - i * 0.3, latency=i / 10)
    run.request(14.0, latency=30.0, error="timeout", status=None)  # failed: not part of the percentile
    return run.finish()


def test_latency_percentile_is_nearest_rank_over_successful_requests() -> None:
    v = latency_run("{kind: latency, window: {from: 10s, to: 20s}, percentile: 90, max: 1s}").verdict()
    assert v.passed is True
    assert v.measured_value == pytest.approx(0.9)  # rank ceil(0.9 * 10) = 9
    assert v.measured == "0.900s"
    assert v.detail == "p90 of 10 successful requests was 0.900s"


def test_latency_fails_over_the_bound() -> None:
    v = latency_run("{kind: latency, window: {from: 10s, to: 20s}, percentile: 50, max: 400ms}").verdict()
    assert v.passed is False
    assert v.measured_value == pytest.approx(0.5)
    assert v.bound == "≤ 400ms"
    assert v.bound_value == pytest.approx(0.4)


def test_latency_without_successful_requests_is_unjudgeable() -> None:
    run = Run("{kind: latency, window: fault, max: 1s}").fault(5.0, 13.0)
    v = run.request(6.0, error="reset", status=None).finish().verdict()
    assert (v.passed, v.measured) == (False, "n/a")
    assert v.detail == "no successful request started between 5.000s and 13.000s"


def test_latency_in_the_baseline_excludes_requests_in_flight() -> None:
    run = Run("{kind: latency, window: baseline, percentile: 100, max: 1s}").fault(5.0, 13.0)
    run.request(1.0, latency=0.2).request(4.0, latency=2.0)  # the second one is still running at 5s
    v = run.finish().verdict()
    assert v.passed is True
    assert v.measured_value == pytest.approx(0.2)


# -- all_down_response -------------------------------------------------------------------

ALL_DOWN_FAULT = '  - {kind: timeout, target: "chat[*]", at: 5s, for: 8s}\n'
NHU = "no healthy upstream"


def all_down_run(expect: str, first_match: float = 7.0) -> Run:
    run = Run(expect, faults=ALL_DOWN_FAULT)
    run.fault(5.0, 13.0, label="timeout@chat[*]", kind="timeout", target="chat[*]", replicas=REPLICAS)
    run.requests(0, 5, replica="chat[1]")
    run.request(5.2, latency=1.0, error="timeout", status=None, replica=None)
    run.request(6.0, error="http_5xx", status=503, replica=None, body="upstream connect error or disconnect")
    t = first_match
    while t < 13.0:  # from the first match on, one request a second; the one at first_match + 3 is a 502
        if t == first_match + 3:
            run.request(t, error="http_5xx", status=502, replica=None, body="bad gateway")
        else:
            run.request(t, error="http_5xx", status=503, replica=None, body=NHU)
        t += 1.0
    run.requests(13.0, 20.0)
    return run.finish()


def test_all_down_response_first_match_and_share_pass() -> None:
    v = all_down_run("{kind: all_down_response, within: 4s, min_share: 0.8}").verdict()
    assert v.passed is True
    assert v.measured_value == pytest.approx(2.0)  # first 503 'no healthy upstream' at 7s, fault began at 5s
    assert v.measured == "2.000s"
    assert v.detail == ("first 503 'no healthy upstream' 2.000s after timeout@chat[*] began; "
                        "83.3% of the 6 requests after it matched (need 80%)")


def test_all_down_response_fails_on_min_share() -> None:
    v = all_down_run("{kind: all_down_response, within: 4s}").verdict()  # default min_share 0.95
    assert v.passed is False
    assert v.measured_value == pytest.approx(2.0)
    assert "83.3% of the 6 requests after it matched (need 95%)" in v.detail


def test_all_down_response_fails_when_first_match_is_late() -> None:
    v = all_down_run("{kind: all_down_response, within: 4s, min_share: 0.5}", first_match=9.5).verdict()
    assert v.passed is False
    assert v.measured_value == pytest.approx(4.5)
    assert v.bound_value == 4.0


def test_all_down_response_never() -> None:
    run = Run("{kind: all_down_response, within: 4s}", faults=ALL_DOWN_FAULT)
    run.fault(5.0, 13.0, label="timeout@chat[*]", kind="timeout", target="chat[*]", replicas=REPLICAS)
    run.request(6.0, error="http_5xx", status=503, replica=None, body="upstream connect error")
    run.request(7.0, latency=1.0, error="timeout", status=None, replica=None)
    v = run.finish().verdict()
    assert v.passed is False
    assert v.measured == "never"
    assert v.measured_value is None
    assert v.detail == ("no client got 503 'no healthy upstream' during timeout@chat[*]; they got: "
                        "503 'upstream connect error'; None 'timeout'")


def test_all_down_response_matches_status_and_body() -> None:
    run = Run("{kind: all_down_response, status: 502, body_contains: gone, within: 4s, min_share: 1.0}",
              faults=ALL_DOWN_FAULT)
    run.fault(5.0, 13.0, label="timeout@chat[*]", kind="timeout", target="chat[*]", replicas=REPLICAS)
    run.request(5.5, error="http_5xx", status=503, replica=None, body="all gone")  # right body, wrong status
    run.request(6.0, error="http_5xx", status=502, replica=None, body="it is gone now")
    run.request(6.5, error="http_5xx", status=502, replica=None, body="it is gone now")
    v = run.finish().verdict()
    assert v.passed is True
    assert v.measured_value == pytest.approx(1.0)


# -- every kind has a passing and a failing case ------------------------------------------

# -- upstream_healthy after: restart_ready (process faults) ---------------------------------

KILL_0 = '  - {kind: process_kill, target: "chat[0]", at: 5s, for: 8s}\n'
READY_HEALTHY = '{kind: upstream_healthy, target: "chat[0]", within: 3s, after: restart_ready}'


def killed_run(*expect: str, ready_at: float | None = 8.0, healthy_at: float = 9.5) -> Run:
    """chat[0] is SIGKILLed at 5s, ejected at 6.2s, restarted at 7s, ready at ``ready_at``, readmitted at ``healthy_at``."""
    run = Run(*expect, faults=KILL_0).fault(5.0, 13.0, label="process_kill@chat[0]", kind="process_kill")
    run.health(6.2, "chat[0]", False).health(healthy_at, "chat[0]", True)
    run.events.append({"type": "process.exited", "ts": T0 + 5.01, "replica": "chat[0]", "signal": "SIGKILL",
                       "status": -9, "oom": False})
    run.events.append({"type": "process.restarted", "ts": T0 + 7.0, "replica": "chat[0]", "pid": 2})
    if ready_at is not None:
        run.events.append({"type": "process.ready", "ts": T0 + ready_at, "replica": "chat[0]", "pid": 2})
    return run


def test_upstream_healthy_from_restart_ready_measures_from_the_ready_event() -> None:
    v = killed_run(READY_HEALTHY).finish().verdict()
    assert v.passed is True
    assert v.measured_value == pytest.approx(1.5)  # 9.5 - 8.0: before the fault's end at 13s
    assert v.detail == "chat[0] was healthy again 1.500s after its restarted process was ready"
    assert "its restarted process being ready" in v.description


def test_upstream_healthy_from_restart_ready_fails_late_and_needs_a_ready_event() -> None:
    assert killed_run(READY_HEALTHY, healthy_at=12.0).finish().verdict().passed is False
    v = killed_run(READY_HEALTHY, ready_at=None).finish().verdict()
    assert v.passed is False and v.measured == "n/a"
    assert "never restarted and ready" in v.detail


def test_process_events_reach_the_timeline() -> None:
    timeline = killed_run(READY_HEALTHY).finish().judge().timeline
    assert [(p.type, p.t) for p in timeline.processes] == [
        ("process.exited", pytest.approx(5.01)), ("process.restarted", 7.0), ("process.ready", 8.0)]
    assert timeline.processes[0].signal == "SIGKILL" and timeline.processes[0].oom is False
    assert timeline.first_process_event("chat[0]", "process.ready", 5.0) == timeline.processes[2]
    assert timeline.first_process_event("chat[0]", "process.ready", 8.5) is None


# -- max_request_time -------------------------------------------------------------------

MAX_TIME = '{kind: max_request_time, window: fault, max: 2s}'


def test_max_request_time_counts_failed_requests_too() -> None:
    v = Run(MAX_TIME).fault(5.0, 13.0).requests(0, 20).request(6.0, latency=1.25, error="reset", status=None).finish().verdict()
    assert v.passed is True
    assert v.measured_value == pytest.approx(1.25)
    assert v.detail == "the longest of 17 requests took 1.250s and failed (reset), started at 6.000s"


def test_max_request_time_fails_on_a_request_that_hung_until_the_client_timeout() -> None:
    v = Run(MAX_TIME).fault(5.0, 13.0).requests(0, 20).request(7.0, latency=10.0, error="timeout", status=None).finish().verdict()
    assert v.passed is False
    assert v.measured == "10.000s" and v.bound == "≤ 2s"


# -- fallback_within -----------------------------------------------------------------------

FALLBACK = '{kind: fallback_within, target: "backup[*]", within: 2s}'
ALL_CHAT_RESET = '  - {kind: reset_peer, target: "chat[*]", at: 5s, for: 8s}\n'


def fallback_run(*expect: str) -> Run:
    """Every chat replica resets from 5 s to 13 s; a pool ``backup`` (one replica) is the fallback."""
    run = Run(*expect, faults=ALL_CHAT_RESET, replicas=(*REPLICAS, "backup[0]"))
    run.text = run.text.replace("  - {name: chat, replicas: 3}\n",
                                "  - {name: chat, replicas: 3}\n  - {name: backup, replicas: 1}\n")
    run.events[0]["text"] = run.text
    return run.fault(5.0, 13.0, label="reset_peer@chat[*]", target="chat[*]", replicas=REPLICAS)


def test_fallback_within_passes_when_the_fallback_answers_in_time() -> None:
    v = fallback_run(FALLBACK).requests(0, 5, replica="chat[1]").request(5.2, error="http_5xx", status=502, replica=None) \
        .request(5.5, latency=0.3, replica="backup[0]").requests(6, 13, replica="backup[0]").finish().verdict()
    assert v.passed is True
    assert v.measured == "0.800s" and v.bound == "≤ 2s"
    assert v.detail == ("reset_peer@chat[*] began at 5.000s; the first answer from backup[*] (backup[0], a request "
                        "started at 5.500s) ended at 5.800s, 0.800s later")


def test_fallback_within_fails_late_never_or_when_the_fallback_served_before_the_fault() -> None:
    late = fallback_run(FALLBACK).requests(0, 5, replica="chat[1]").requests(5, 8, error="http_5xx", status=502,
                                                                              replica=None)
    v = late.requests(8, 13, replica="backup[0]").finish().verdict()
    assert v.passed is False and v.measured == "3.050s"
    v = fallback_run(FALLBACK).requests(0, 5, replica="chat[1]").requests(5, 13, error="http_5xx", status=502,
                                                                           replica=None).finish().verdict()
    assert v.passed is False and v.measured == "n/a"
    assert v.detail == "backup[*] answered no client request after reset_peer@chat[*] began at 5.000s: the fallback " \
                       "was never used"
    v = fallback_run(FALLBACK).requests(0, 13, replica="backup[0]").finish().verdict()  # a load balancer, no fallback
    assert v.passed is False and v.measured == "served before the fault"
    assert v.detail.startswith("backup[0] answered a request that ended at 0.050s, before reset_peer@chat[*] began at "
                               "5.000s (10 such answers)")


# -- upstream_attempts ----------------------------------------------------------------------

ATTEMPTS = "{kind: upstream_attempts, max_per_request: 2}"


def test_upstream_attempts_counts_every_try_a_replica_saw_or_the_gateway_sent() -> None:
    run = Run(ATTEMPTS).fault(5.0, 13.0).attempt_logs("logs/envoy-upstream.jsonl")
    run.request(1.0, id="a").attempt(1.01, "chat[1]", "a")
    run.request(6.0, id="b").attempt(6.01, "chat[0]", "b").attempt(6.02, "chat[1]", "b")
    # c: the gateway logged two tries, the first refused on the way (its replica never saw it)
    run.request(7.0, id="c").attempt(7.0, "chat[0]", "c", source="gateway", status=None, flags="UF") \
        .attempt(7.01, "chat[1]", "c", source="gateway", status=200).attempt(7.02, "chat[1]", "c")
    run.attempt(7.5, "chat[0]", None, health=True)  # a health check: no client request's
    v = run.finish().verdict()
    assert v.passed is True and v.measured == "2 at most" and v.bound == "≤ 2 per request"
    assert v.detail == ("3 client requests between 0.000s and 20.000s; attempts per request: 1: 1, 2: 2 "
                        "(the gateway's log of each try included)")


def test_upstream_attempts_fails_over_the_bound_and_without_attempt_logs() -> None:
    run = Run(ATTEMPTS).fault(5.0, 13.0).attempt_logs()
    run.request(6.0, id="b", status=503, error="http_5xx", replica=None)
    for i, replica in enumerate(("chat[0]", "chat[1]", "chat[2]")):
        run.attempt(6.01 + i / 100, replica, "b")
    v = run.request(8.0, id="d").attempt(8.01, "chat[1]", "d").finish().verdict()
    assert v.passed is False and v.measured == "3 at most" and v.measured_value == 3.0
    assert v.detail.endswith("attempts per request: 1: 1, 3: 1 (tries the replicas saw arrive; the gateway logs none "
                             "of its own); over the bound: 1, e.g. b (3 attempts, 503)")
    v = Run(ATTEMPTS).fault(5.0, 13.0).request(6.0, id="b").finish().verdict()
    assert v.passed is False and v.measured == "n/a" and v.detail.startswith("the run kept no attempt logs")


# -- served_by, retry_after_honoured, gateway_retry_after, tokens_wasted --------------------

def answer(run: Run, t: float, replica: str, request_id: str | None, status: int = 200, *,
           retry_after: float | None = None, tokens: int = 0, model: str | None = None) -> Run:
    """A fake's answer to one try (``attempt.answer``, as harness/attempts.py journals the fakes' answer lines)."""
    event: dict[str, Any] = {"type": "attempt.answer", "ts": T0 + t, "replica": replica, "request_id": request_id,
                             "status": status, "tokens": tokens}
    if retry_after is not None:
        event["retry_after"] = retry_after
    if model is not None:
        event["model"] = model
    run.events.append(event)
    return run


def with_model(run: Run, model: str) -> Run:
    """The answer of the last request journalled named ``model`` (its model field)."""
    run.events[-1]["model"] = model
    return run


SERVED_BY = '{kind: served_by, target: "backup[*]", min_share: 0.9}'
SERVED_BY_MODEL = '{kind: served_by, model: claude-fake, min_share: 0.5, window: {from: 5s, to: 13s}}'


def test_served_by_passes_when_the_fallback_served_its_share_by_replica_or_model() -> None:
    run = fallback_run(SERVED_BY, SERVED_BY_MODEL).requests(0, 5, replica="chat[1]")
    run.request(5.1, error="http_5xx", status=502, replica=None)  # a failure is no success of anyone
    for i in range(8):
        with_model(run.request(5.5 + i, replica="backup[0]"), "claude-fake")
    first, by_model = run.finish().judge().verdicts
    assert first.passed is True and first.measured == "100.00%" and first.bound == "≥ 90.00%"
    assert first.detail == "backup[*] served 8 of the 8 successful requests between 5.000s and 13.000s (1 failed)"
    assert by_model.passed is True and by_model.measured_value == 1.0
    assert by_model.detail.startswith("model claude-fake served 8 of the 8 successful requests")
    # the bound holds at the share itself: 8 of 16 is 50%, and min_share 0.5 passes
    run = fallback_run(SERVED_BY_MODEL).requests(5, 9, replica="chat[1]")
    for i in range(8):
        with_model(run.request(9 + i / 2, replica="backup[0]"), "claude-fake")
    v = run.finish().verdict()
    assert v.passed is True and v.measured == "50.00%"


def test_served_by_fails_when_the_primary_kept_the_traffic_or_nothing_succeeded() -> None:
    run = fallback_run(SERVED_BY, SERVED_BY_MODEL).requests(0, 5, replica="chat[1]")
    run.requests(5, 9, replica="chat[2]")  # the primary kept answering: 8 requests
    for i in range(7):
        with_model(run.request(9 + i / 2, replica="backup[0]"), "claude-fake")
    first, by_model = run.finish().judge().verdicts
    assert first.passed is False and first.measured == "46.67%" and first.measured_value == pytest.approx(7 / 15)
    assert first.detail == ("backup[*] served 7 of the 15 successful requests between 5.000s and 13.000s (0 failed); "
                            "the others: chat[2] 8")
    assert by_model.passed is False and by_model.detail.endswith("the others: no model field 8")
    v = fallback_run(SERVED_BY).requests(5, 13, error="http_5xx", status=502, replica=None).finish().verdict()
    assert v.passed is False and v.measured == "n/a"
    assert v.detail == "no successful request started between 5.000s and 13.000s (16 failed)"


def test_served_by_takes_a_target_or_a_model_not_both() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="give exactly one of target"):
        EXPECTATIONS["served_by"].model_validate({"kind": "served_by", "target": "chat[*]", "model": "m",
                                                  "min_share": 0.5})
    with pytest.raises(ValidationError, match="give exactly one of target"):
        EXPECTATIONS["served_by"].model_validate({"kind": "served_by", "min_share": 0.5})


HONOURED = '{kind: retry_after_honoured, target: "chat[0]"}'


def rate_limited_run(*expect: str) -> Run:
    """chat[0] answers request a's try at 6.0 s with a 429 asking for 2 s: nothing may reach it before 8.0 s."""
    run = Run(*expect).fault(5.0, 13.0).attempt_logs()
    run.request(5.98, id="a", replica="chat[1]").attempt(5.99, "chat[0]", "a")
    answer(run, 6.0, "chat[0]", "a", 429, retry_after=2.0)
    run.attempt(6.02, "chat[1]", "a")  # its retry went elsewhere
    answer(run, 6.03, "chat[1]", "a", tokens=16)
    run.request(5.9, id="f", replica="chat[0]").attempt(6.05, "chat[0]", "f")  # sent before the 429 went out
    run.request(6.05, id="h", replica="chat[0]").attempt(6.06, "chat[0]", "h")  # too soon for the gateway to read it
    run.request(6.5, id="c", replica="chat[1]").attempt(6.51, "chat[1]", "c")
    run.request(7.99, id="e", replica="chat[0]").attempt(8.0, "chat[0]", "e")  # right as the wait ends
    run.attempt(7.0, "chat[0]", None, health=True)  # the gateway's health check: no client try
    return run


def test_retry_after_honoured_passes_when_nothing_came_back_before_the_wait_was_over() -> None:
    v = rate_limited_run(HONOURED).finish().verdict()
    assert v.passed is True and v.measured == "0 early tries" and v.bound == "0 early tries"
    assert v.detail == ("1 answers of chat[0] asked to wait (2s; statuses 429); no try reached it before its wait "
                        "was over")


def test_retry_after_honoured_fails_on_a_try_or_retry_sent_after_the_answer_and_before_the_wait_ended() -> None:
    run = rate_limited_run(HONOURED)
    run.request(6.5, id="d", replica="chat[0]").attempt(7.99, "chat[0]", "d")  # 10 ms before the wait was over
    run.request(6.15, id="g", status=429, error="http_4xx", replica="chat[0]").attempt(6.16, "chat[0]", "g")
    answer(run, 6.17, "chat[0]", "g", 429, retry_after=2.0)
    run.attempt(6.25, "chat[0]", "g")  # the gateway retried g at once on the replica that asked it to wait
    v = run.finish().verdict()  # g twice, d, and now e too: g's 429 asked for 2 s from 6.17 s
    assert v.passed is False and v.measured == "4 early tries" and v.measured_value == 4
    assert v.detail == ("2 answers of chat[0] asked to wait (2s; statuses 429); 4 tries reached it before the wait "
                        "was over, e.g. request g reached chat[0] at 6.160s, 0.160s after its 429 asked for 2s, "
                        "request g reached chat[0] at 6.250s, 0.080s after its 429 asked for 2s, request d reached "
                        "chat[0] at 7.990s, 1.820s after its 429 asked for 2s and 1 more")
    v = Run(HONOURED).fault(5.0, 13.0).attempt_logs().request(6.0, id="a").attempt(6.01, "chat[0]", "a")
    v = answer(v, 6.02, "chat[0]", "a", 429).finish().verdict()  # no Retry-After: nothing promised
    assert v.passed is False and v.measured == "n/a"
    assert v.detail == ("no answer of chat[0] sent a Retry-After (1 answers journalled): nothing was promised, so "
                        "there is nothing to honour")


GATEWAY_RETRY_AFTER = "{kind: gateway_retry_after}"


def own_answer(run: Run, t: float, status: int, retry_after: str | None = None, retry_after_ms: str | None = None,
               replica: str | None = None) -> Run:
    run.request(t, error="http_4xx" if status < 500 else "http_5xx", status=status, replica=replica,
                body='{"error": "No deployments available"}')
    if retry_after is not None:
        run.events[-1]["retry_after"] = retry_after
    if retry_after_ms is not None:
        run.events[-1]["retry_after_ms"] = retry_after_ms
    return run


def test_gateway_retry_after_passes_when_each_own_answer_says_when_to_come_back() -> None:
    run = Run(GATEWAY_RETRY_AFTER).fault(5.0, 13.0).requests(0, 5)
    own_answer(run, 6.0, 429, retry_after="5")
    own_answer(run, 7.0, 503, retry_after="Tue, 14 Nov 2023 22:13:30 GMT")  # T0 + 10 s: 2.95 s after it ended
    own_answer(run, 8.0, 429, retry_after_ms="1500")
    own_answer(run, 9.0, 429, replica="chat[0]")  # a provider's 429 passed on: not the gateway's own
    v = run.finish().verdict()
    assert v.passed is True and v.measured == "3 of 3" and v.bound == "every one"
    assert v.detail == ("3 of the gateway's 3 own 429/503 answers between 0.000s and 20.000s carried a Retry-After "
                        "(1 passed on from a replica not counted); asking 1.5s to 5s")


def test_gateway_retry_after_fails_on_an_own_answer_without_one_or_when_it_never_answered_so() -> None:
    run = Run(GATEWAY_RETRY_AFTER).fault(5.0, 13.0)
    own_answer(run, 6.0, 429, retry_after="5")
    own_answer(run, 7.0, 503, retry_after="soon")  # not a number, not a date: nothing a client can read
    v = run.finish().verdict()
    assert v.passed is False and v.measured == "1 of 2" and v.measured_value == 0.5
    assert v.detail.endswith("asking 5s; without one: 503 at 7.000s ('{\"error\": \"No deployments available\"}')")
    v = own_answer(Run(GATEWAY_RETRY_AFTER).fault(5.0, 13.0), 9.0, 429, replica="chat[0]").finish().verdict()
    assert v.passed is False and v.measured == "n/a"
    assert v.detail == "the gateway answered no 429/503 of its own between 0.000s and 20.000s (1 passed on from a replica)"


def wasteful_run(*expect: str) -> Run:
    """Request a: chat[0]'s stream stalled after 3 tokens, the gateway retried it on chat[1], which served all 16.
    Request b: chat[2]'s stream was cut after 5 tokens and the client got it cut. Request c: whole at once."""
    run = Run(*expect).fault(5.0, 13.0).attempt_logs()
    run.request(6.0, id="a", replica="chat[1]", kind="chat_stream").attempt(6.01, "chat[0]", "a")
    answer(run, 6.02, "chat[0]", "a", tokens=3).attempt(7.0, "chat[1]", "a")
    answer(run, 7.01, "chat[1]", "a", tokens=16)
    run.request(8.0, id="b", replica="chat[2]", kind="chat_stream", error="stream_incomplete").attempt(8.01, "chat[2]", "b")
    answer(run, 8.02, "chat[2]", "b", tokens=5)
    run.request(9.0, id="c", replica="chat[1]").attempt(9.01, "chat[1]", "c")
    answer(run, 9.02, "chat[1]", "c", tokens=16)
    answer(run, 9.5, "chat[0]", None, tokens=1)  # a gateway's health check completion: no client request's
    return run


def test_tokens_wasted_counts_streams_cut_and_tries_retried_away() -> None:
    v = wasteful_run("{kind: tokens_wasted, max: 8}").finish().verdict()
    assert v.passed is True and v.measured == "8 tokens" and v.bound == "≤ 8 tokens"
    assert v.detail == ("8 of the 40 tokens generated for 3 client requests between 0.000s and 20.000s reached no "
                        "client: 5 in the answers of 1 requests whose client got no whole answer, 3 in 1 tries of "
                        "answered requests that their client never got; e.g. b (5 tokens, stream_incomplete)")


def test_tokens_wasted_fails_over_the_bound_and_without_answers() -> None:
    v = wasteful_run("{kind: tokens_wasted, max: 7}").finish().verdict()
    assert v.passed is False and v.measured_value == 8.0 and v.bound_value == 7.0
    v = wasteful_run("{kind: tokens_wasted, max: 0, window: {from: 9s, to: 20s}}").finish().verdict()
    assert v.passed is True and v.measured == "0 tokens"  # only c in the window, and c got its whole answer
    v = Run("{kind: tokens_wasted, max: 0}").fault(5.0, 13.0).attempt_logs().request(6.0, id="a").finish().verdict()
    assert v.passed is False and v.measured == "n/a" and v.detail.startswith("the run journalled no answers")


PASS_FAIL: dict[str, tuple[Any, Any]] = {
    "upstream_unhealthy": (test_upstream_unhealthy_passes_when_detected_in_time,
                           test_upstream_unhealthy_fails_when_detected_late),
    "upstream_healthy": (test_upstream_healthy_is_measured_from_the_fault_end,
                         test_upstream_healthy_fails_when_readmitted_late),
    "error_rate": (test_error_rate_passes_under_the_bound, test_error_rate_fails_over_the_bound_and_names_the_error_kinds),
    "no_traffic_to": (test_no_traffic_to_passes_when_the_replica_is_routed_around_after_detection,
                      test_no_traffic_to_fails_and_counts_only_requests_in_the_window),
    "traffic_to": (test_traffic_to_passes_when_the_replica_keeps_serving_in_the_window,
                   test_traffic_to_fails_when_the_replica_was_dropped_and_counts_only_successes),
    "latency": (test_latency_percentile_is_nearest_rank_over_successful_requests, test_latency_fails_over_the_bound),
    "all_down_response": (test_all_down_response_first_match_and_share_pass, test_all_down_response_fails_on_min_share),
    "max_request_time": (test_max_request_time_counts_failed_requests_too,
                         test_max_request_time_fails_on_a_request_that_hung_until_the_client_timeout),
    "diagnosis": (diagnosis_named_right_or_wrong, diagnosis_missing_or_failed),  # tests/unit/test_diagnose.py
    "fallback_within": (test_fallback_within_passes_when_the_fallback_answers_in_time,
                        test_fallback_within_fails_late_never_or_when_the_fallback_served_before_the_fault),
    "upstream_attempts": (test_upstream_attempts_counts_every_try_a_replica_saw_or_the_gateway_sent,
                          test_upstream_attempts_fails_over_the_bound_and_without_attempt_logs),
    "served_by": (test_served_by_passes_when_the_fallback_served_its_share_by_replica_or_model,
                  test_served_by_fails_when_the_primary_kept_the_traffic_or_nothing_succeeded),
    "retry_after_honoured": (
        test_retry_after_honoured_passes_when_nothing_came_back_before_the_wait_was_over,
        test_retry_after_honoured_fails_on_a_try_or_retry_sent_after_the_answer_and_before_the_wait_ended),
    "gateway_retry_after": (test_gateway_retry_after_passes_when_each_own_answer_says_when_to_come_back,
                            test_gateway_retry_after_fails_on_an_own_answer_without_one_or_when_it_never_answered_so),
    "tokens_wasted": (test_tokens_wasted_counts_streams_cut_and_tries_retried_away,
                      test_tokens_wasted_fails_over_the_bound_and_without_answers),
    "stall_detected": (  # tests/unit/test_stall_detected.py (which builds on this file's Run)
        "test_stall_detected_passes_when_each_stalled_stream_is_let_go_of_in_time_and_its_client_served_or_told",
        "test_stall_detected_fails_late_early_never_or_when_the_client_gave_up_first"),
}


def test_every_expectation_kind_has_a_passing_and_a_failing_case() -> None:
    assert set(PASS_FAIL) == set(EXPECTATIONS)


# -- the judgement ------------------------------------------------------------------------

def passing_run(outcome: str | None) -> Run:
    return Run("{kind: error_rate, window: baseline, max: 0.0}").fault(5.0, 13.0).requests(0, 20).finish(outcome=outcome)


def test_complete_run_with_passing_verdicts_passes() -> None:
    judgement = passing_run("complete").judge()
    assert [v.passed for v in judgement.verdicts] == [True]
    assert judgement.timeline.complete is True
    assert judgement.passed is True


@pytest.mark.parametrize("outcome", [None, "interrupted", "failed"])
def test_incomplete_run_fails_even_if_every_verdict_passes(outcome: str | None) -> None:
    judgement = passing_run(outcome).judge()
    assert [v.passed for v in judgement.verdicts] == [True]
    assert judgement.timeline.complete is False
    assert judgement.passed is False


def test_judgement_carries_the_scenario_and_every_verdict_in_order() -> None:
    run = detected_run(UNHEALTHY, HEALTHY, NO_TRAFFIC).requests(0, 20, replica="chat[2]").finish()
    judgement = run.judge()
    assert judgement.scenario.name == "t"
    assert [v.kind for v in judgement.verdicts] == ["upstream_unhealthy", "upstream_healthy", "no_traffic_to"]
    assert judgement.passed is True


# -- the timeline -------------------------------------------------------------------------

def test_timeline_times_are_relative_to_load_start_and_open_faults_last_to_the_end() -> None:
    run = Run("{kind: error_rate, window: run, max: 1.0}").fault(5.0, None).request(3.0, latency=0.25)
    timeline = build_timeline(run.finish(t=18.0).events)
    assert timeline.t0 == T0
    assert timeline.end == pytest.approx(18.0)
    assert timeline.replicas == list(REPLICAS)
    (window,) = timeline.faults
    assert (window.label, window.start, window.end, window.replicas) == (RESET_0_LABEL, 5.0, 18.0, ("chat[0]",))
    (request,) = timeline.requests
    assert (request.t, request.latency, request.ok) == (3.0, 0.25, True)


def test_timeline_maps_the_gateway_upstream_address_to_a_replica() -> None:
    run = Run("{kind: error_rate, window: run, max: 1.0}").fault(5.0, 13.0)
    run.request(1.0, replica=None, error="reset", status=None, upstream=proxy_address("chat[2]"))
    run.request(2.0, replica="chat[1]")
    timeline = build_timeline(run.finish().events)
    routed, served = timeline.requests
    assert routed.routed_to == "chat[2]" and routed.reached({"chat[2]"}) and not routed.reached({"chat[0]"})
    assert served.routed_to is None and served.reached({"chat[1]"})


def test_timeline_health_view() -> None:
    run = detected_run(UNHEALTHY, unhealthy_at=6.5, healthy_at=14.5).finish()
    timeline = build_timeline(run.events)
    assert timeline.healthy_at("chat[0]", -2.0) is None  # before the first sample
    assert timeline.healthy_at("chat[0]", 6.49) is True
    assert timeline.healthy_at("chat[0]", 6.5) is False
    assert timeline.first_unhealthy("chat[0]", 5.0) == pytest.approx(6.5)
    assert timeline.first_unhealthy("chat[0]", 7.0) == 7.0  # already unhealthy then
    assert timeline.first_healthy("chat[0]", 13.0) == pytest.approx(14.5)
    assert timeline.first_unhealthy("chat[1]", 0.0) is None


@pytest.mark.parametrize(
    ("values", "pct", "expected"),
    [
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50, 5),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90, 9),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 91, 10),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 99, 10),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 100, 10),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.1, 1),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0, 1),
        ([10, 1, 7, 3], 50, 3),
        ([10, 1, 7, 3], 75, 7),
        ([0.42], 99, 0.42),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], pct: float, expected: float) -> None:
    assert percentile(values, pct) == expected


def test_percentile_does_not_reorder_its_input() -> None:
    values = [3.0, 1.0, 2.0]
    assert percentile(values, 100) == 3.0
    assert values == [3.0, 1.0, 2.0]


def test_fallback_within_promised_passes_only_inside_the_window_the_gateways_configuration_promises() -> None:
    from harness.promise.fallback import fallback_window
    from harness.promise.window import Window
    from harness.scenario import parse_scenario

    def promised_run() -> Run:
        run = fallback_run('{kind: fallback_within, target: "backup[*]", within: promised}')
        run.text = run.text.replace("  - {name: chat, replicas: 3}\n", "  - {name: chat, replicas: 3, fallback: backup}\n")
        run.text = run.text.replace("name: t\n", "name: t\ngateway: {health_check: {interval: 1s, timeout: 500ms, "
                                                 "unhealthy_threshold: 2, healthy_threshold: 2, no_traffic_interval: 1s}}\n")
        run.events[0]["text"] = run.text
        return run.requests(0, 5, replica="chat[1]")

    scenario = parse_scenario(promised_run().text, "t.yaml")
    promise = fallback_window(scenario, scenario.faults[0])
    assert isinstance(promise, Window) and 0.5 < promise.lower < promise.upper < 4, promise  # spills once detected

    def first_answer_at(after: float) -> Verdict:
        run = promised_run().request(5.0 + after - 0.05, replica="backup[0]")
        return run.requests(5.0 + after + 0.5, 13, replica="backup[0]").finish().verdict()

    inside = first_answer_at((promise.lower + promise.upper) / 2)
    assert inside.passed is True, inside.detail
    assert inside.bound == f"in {promise.text()}" and "inside it" in inside.detail
    late = first_answer_at(promise.upper + 0.5)
    assert late.passed is False and "later than it" in late.detail, late.detail
    early = first_answer_at(max(0.1, promise.lower - 0.4))
    assert early.passed is False and "earlier than it" in early.detail, early.detail
    # a pool without a fallback promises none: within: promised cannot pass
    run = fallback_run('{kind: fallback_within, target: "backup[*]", within: promised}').requests(0, 5, replica="chat[1]")
    v = run.request(6.0, replica="backup[0]").finish().verdict()
    assert v.passed is False and "has no fallback pool" in v.detail, v.detail
