"""The plan: a scenario's faults as ordered, timed start and clear actions."""

from __future__ import annotations

import pytest

from harness.errors import ScenarioError
from harness.plan import make_plan, together
from harness.scenario import parse_scenario


def scenario(faults: str, duration: str = "30s"):
    return parse_scenario(
        "name: t\n"
        "upstreams:\n  - {name: chat, replicas: 3}\n  - {name: embed, replicas: 2}\n"
        f"load: {{duration: {duration}}}\n"
        "faults:\n" + faults, "x.yaml")


def test_actions_are_ordered_in_time() -> None:
    plan = make_plan(scenario(
        '  - {name: late, kind: down, target: "chat[1]", at: 10s, for: 5s}\n'
        '  - {name: early, kind: latency, latency: 1s, target: "embed[0]", at: 2s, for: 20s}\n'
        '  - {name: mid, kind: reset_peer, target: "chat[0]", at: 4s, for: 2s}\n'))
    assert plan.duration == 30.0
    assert [(a.t, a.start, a.fault.label) for a in plan.actions] == [
        (2.0, True, "early"),
        (4.0, True, "mid"),
        (6.0, False, "mid"),
        (10.0, True, "late"),
        (15.0, False, "late"),
        (22.0, False, "early"),
    ]
    assert [a.replicas for a in plan.actions][:2] == [("embed[0]",), ("chat[0]",)]


def test_clears_come_before_starts_at_equal_times() -> None:
    plan = make_plan(scenario(
        '  - {name: second, kind: down, target: "chat[0]", at: 5s, for: 5s}\n'
        '  - {name: first, kind: down, target: "chat[0]", at: 0s, for: 5s}\n'))
    assert [(a.t, a.start, a.fault.label) for a in plan.actions] == [
        (0.0, True, "first"), (5.0, False, "first"), (5.0, True, "second"), (10.0, False, "second")]


def test_a_fault_never_clears_before_it_starts() -> None:
    # `for: 0s` passes validation (at + for <= load.duration). With clears sorted before starts
    # at equal times, the fault's own clear would run before its start, leaving it active
    # for the rest of the run. Rejecting a zero-length fault is as good a fix as ordering.
    try:
        s = scenario('  - {name: blip, kind: down, target: "chat[0]", at: 5s, for: 0s}\n')
    except ScenarioError as exc:
        assert "faults[name='blip'].for" in str(exc)
        return
    plan = make_plan(s)
    assert [(a.t, a.start) for a in plan.actions] == [(5.0, True), (5.0, False)]


@pytest.mark.parametrize(("target", "replicas"), [
    ("chat[*]", ("chat[0]", "chat[1]", "chat[2]")),
    ("chat", ("chat[0]", "chat[1]", "chat[2]")),
    ("embed[*]", ("embed[0]", "embed[1]")),
    ("chat[2]", ("chat[2]",)),
])
def test_targets_resolve_to_replicas(target: str, replicas: tuple[str, ...]) -> None:
    plan = make_plan(scenario(f'  - {{kind: down, target: "{target}", at: 1s, for: 2s}}\n'))
    start, clear = plan.actions
    assert start.replicas == clear.replicas == replicas
    assert start.fault is clear.fault


def test_plan_without_faults() -> None:
    s = parse_scenario("name: t\nupstreams:\n  - {name: chat}\nload: {duration: 12s}\n", "x.yaml")
    plan = make_plan(s)
    assert plan.actions == ()
    assert plan.duration == 12.0
    assert plan.phase_at(0.0) == plan.phase_at(11.0) == "baseline"


def test_phase_at() -> None:
    plan = make_plan(scenario(
        '  - {name: a, kind: down, target: "chat[0]", at: 5s, for: 5s}\n'
        '  - {name: b, kind: down, target: "chat[1]", at: 8s, for: 4s}\n'
        '  - {name: c, kind: down, target: "chat[2]", at: 20s, for: 2s}\n'))
    assert plan.phase_at(0.0) == "baseline"
    assert plan.phase_at(4.999) == "baseline"
    assert plan.phase_at(5.0) == "fault"
    assert plan.phase_at(9.0) == "fault"    # a and b overlap
    assert plan.phase_at(10.5) == "fault"   # a ended, b still active
    assert plan.phase_at(12.0) == "recovery"
    assert plan.phase_at(19.0) == "recovery"
    assert plan.phase_at(21.0) == "fault"
    assert plan.phase_at(25.0) == "recovery"


def test_actions_due_at_the_same_moment_form_one_batch_clears_before_starts() -> None:
    plan = make_plan(scenario(
        '  - {name: a, kind: down, target: "chat[0]", at: 5s, for: 5s}\n'
        '  - {name: b, kind: latency, latency: 1s, target: "chat[1]", at: 5s, for: 3s}\n'
        '  - {name: c, kind: reset_peer, target: "chat[2]", at: 8s, for: 2s}\n'
        '  - {name: d, kind: down, target: "chat[0]", at: 10s, for: 2s}\n'))
    batches = [[(a.t, a.start, a.fault.label) for a in batch] for batch in together(plan.actions)]
    assert batches == [
        [(5.0, True, "a"), (5.0, True, "b")],                    # injected together
        [(8.0, False, "b")], [(8.0, True, "c")],                 # at one moment: the clear, then the start
        [(10.0, False, "a"), (10.0, False, "c")], [(10.0, True, "d")],
        [(12.0, False, "d")],
    ]
