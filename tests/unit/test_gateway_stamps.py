"""Detection and recovery stamped by the gateway's own events (harness/gateway_events.py): each adapter's
reading of its log, and the timeline moving a polled change to the gateway's stamp of it."""

from __future__ import annotations

from typing import Any

import pytest

from harness.gateways.envoy import EnvoyGateway
from harness.gateways.haproxy import HaproxyGateway
from harness.scenario import Gateway
from harness.timeline import HealthChange, HealthStamp, build_timeline, stamped


def change(t: float, healthy: bool) -> HealthChange:
    return HealthChange(t=t, replica="chat[0]", healthy=healthy, flags="")


def stamp(t: float, healthy: bool, what: str = "") -> HealthStamp:
    return HealthStamp(t=t, replica="chat[0]", healthy=healthy, what=what)


def test_a_polled_change_moves_to_the_gateways_stamp_of_it() -> None:
    changes = [change(0.0, True), change(5.030, False), change(9.050, True)]
    stamps = [stamp(-1.0, True, "first check"), stamp(5.002, False, "eject"), stamp(9.001, True, "add_healthy")]
    assert [(c.t, c.polled, c.stamped_by) for c in stamped(changes, stamps)] == [
        (-1.0, 0.0, "first check"), (5.002, 5.030, "eject"), (9.001, 9.050, "add_healthy")]


def test_a_change_without_a_stamp_in_its_direction_keeps_its_polled_time() -> None:
    changes = [change(0.0, True), change(5.030, False), change(9.050, True)]
    # the stamp of the readmission came after the next poll: it is not this change's
    stamps = [stamp(5.002, False), stamp(9.200, True)]
    assert [(c.t, c.polled) for c in stamped(changes, stamps)] == [(0.0, None), (5.002, 5.030), (9.050, None)]


def test_a_stamp_counts_until_the_polls_answer_came() -> None:
    # the view the poll got is the gateway's at some moment between the poll's start and its answer
    answered = HealthChange(t=5.030, replica="chat[0]", healthy=False, flags="", answered=5.036)
    assert stamped([answered], [stamp(5.035, False)])[0].t == 5.035
    assert stamped([answered], [stamp(5.0375, False)])[0].t == 5.0375  # within the clock's rounding (2 ms)
    assert stamped([answered], [stamp(5.040, False)])[0].polled is None  # after the answer: another change's
    assert stamped([change(5.030, False)], [stamp(5.033, False)])[0].polled is None  # no answer journalled


def test_a_readmission_without_a_change_stamped_is_the_last_passing_check_before_it() -> None:
    # Envoy un-ejects a host outlier detection ejected at a passing check, and logs no event of its own for it
    checks = [HealthStamp(t=t, replica="chat[0]", healthy=True, what="check", change=False) for t in (5.5, 6.5, 7.5)]
    changes = [change(0.0, True), change(5.030, False), change(6.540, True)]
    assert [c.t for c in stamped(changes, [stamp(5.001, False), *checks])] == [0.0, 5.001, 6.5]


def test_the_stamp_is_the_first_one_after_the_last_opposite_one() -> None:
    # a flap the poll did not see: DOWN, UP, DOWN between two polls; the change is the last DOWN
    stamps = [stamp(5.001, False), stamp(5.010, True), stamp(5.020, False), stamp(5.025, False)]
    assert stamped([change(0.0, True), change(5.030, False)], stamps)[1].t == 5.020


def test_a_stamp_from_before_the_run_is_an_earlier_runs_and_is_ignored() -> None:
    events: list[dict[str, Any]] = [
        {"type": "run.started", "ts": 100.0, "replicas": ["chat[0]"]},
        {"type": "gateway.health", "ts": 50.0, "address": "a:1", "replica": "chat[0]", "healthy": True, "what": "old"},
        {"type": "load.started", "ts": 101.0},
        {"type": "health", "ts": 101.0, "replica": "chat[0]", "healthy": True, "flags": ""},
        {"type": "gateway.health", "ts": 104.99, "address": "a:1", "replica": "chat[0]", "healthy": False, "what": "x"},
        {"type": "health", "ts": 105.02, "replica": "chat[0]", "healthy": False, "flags": "failed"},
    ]
    health = build_timeline(events).health["chat[0]"]
    assert [(c.t, c.polled) for c in health] == [(0.0, None), (pytest.approx(3.99), pytest.approx(4.02))]


ENVOY_EJECT = {"health_checker_type": "HTTP", "cluster_name": "chat", "timestamp": "2026-12-07T04:47:36.863Z",
               "host": {"socket_address": {"protocol": "TCP", "address": "127.0.0.1", "port_value": 34241}},
               "eject_unhealthy_event": {"failure_type": "NETWORK", "http_status_code": 0}}


def test_envoys_health_checker_events_that_change_health() -> None:
    assert EnvoyGateway.parse_health_event(ENVOY_EJECT) == [
        {"ts": 1796618856.863, "address": "127.0.0.1:34241", "healthy": False, "what": "eject_unhealthy_event NETWORK"}]
    readmit = {**{k: v for k, v in ENVOY_EJECT.items() if k != "eject_unhealthy_event"},
               "add_healthy_event": {"first_check": False}}
    assert EnvoyGateway.parse_health_event(readmit)[0]["healthy"] is True
    failure = {**{k: v for k, v in ENVOY_EJECT.items() if k != "eject_unhealthy_event"},
               "health_check_failure_event": {"failure_type": "NETWORK"}}
    assert EnvoyGateway.parse_health_event(failure) == []  # one failed check changes nothing yet


def test_envoys_enforced_outlier_ejections() -> None:
    eject = {"type": "CONSECUTIVE_5XX", "cluster_name": "chat", "upstream_url": "127.0.0.1:34241", "action": "EJECT",
             "num_ejections": 1, "enforced": True, "timestamp": "2026-12-07T04:47:36.863Z"}
    assert EnvoyGateway.parse_health_event(eject) == [
        {"ts": 1796618856.863, "address": "127.0.0.1:34241", "healthy": False, "what": "outlier EJECT CONSECUTIVE_5XX"}]
    assert EnvoyGateway.parse_health_event({**eject, "enforced": False}) == []
    assert EnvoyGateway.parse_health_event({**eject, "action": "UNEJECT"})[0]["healthy"] is True


def test_haproxys_server_state_lines() -> None:
    gateway = HaproxyGateway(Gateway(kind="haproxy"), 1, 2, "chat")
    gateway._addresses[("chat", "chat-0")] = "127.0.0.1:34241"
    down = ('2026-12-07T04:48:06.175278+00:00 Server chat/chat-0 is DOWN, reason: Layer4 connection problem, '
            'info: "Connection refused", check duration: 0ms. 0 active and 0 backup servers left.')
    assert gateway.parse_health_event({"line": down}) == [
        {"ts": 1796618886.175278, "address": "127.0.0.1:34241", "healthy": False,
         "what": "DOWN Layer4 connection problem"}]
    up = "2026-12-07T04:48:09.000001+00:00 Server chat/chat-0 is UP, reason: Layer7 check passed, code: 200"
    assert gateway.parse_health_event({"line": up})[0]["healthy"] is True
    assert gateway.parse_health_event({"line": up.replace("chat/chat-0", "other/x")}) == []  # not a replica
    assert gateway.parse_health_event({"line": "[WARNING]  (20481) : Server chat/chat-0 is DOWN, reason: x"}) == []
