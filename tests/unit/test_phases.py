"""Where a run's time goes (harness/phases.py): journalled phase by phase, shown in the report and summary."""

from __future__ import annotations

from typing import Any

from harness.phases import STACK_PHASES, PhaseClock
from harness.report.data import RunData
from tests.waiting import wait_until


def test_the_clock_marks_moments_since_it_began_in_order() -> None:
    clock = PhaseClock()
    first = clock.mark("a")
    wait_until(lambda: clock.since() > first + 0.002, 1, "the clock to move")
    clock.mark("b")
    assert list(clock.marks) == ["a", "b"] and 0 <= clock.marks["a"] < clock.marks["b"]


def journal(**extra: Any) -> list[dict[str, Any]]:
    text = "name: p\nupstreams: [{name: chat}]\nload: {duration: 2s}\n"
    return [
        {"type": "run.started", "ts": 100.0, "text": text, "file": "p.yaml", "replicas": ["chat[0]"]},
        {"type": "stack.ready", "ts": 101.0, "startup_seconds": 0.9,
         "phases": {"toxiproxy_ready": 0.05, "replicas_ready": 0.6, "proxies_created": 0.61, "gateway_started": 0.62,
                    "gateway_ready": 0.8, "all_healthy": 0.9, **extra}},
        {"type": "load.started", "ts": 102.3, "startup_seconds": 1.3},
        {"type": "load.finished", "ts": 104.5, "drain_seconds": 0.2},
        {"type": "run.finished", "ts": 104.8, "outcome": "complete", "teardown_seconds": 0.25},
    ]


def test_the_report_and_summary_show_each_phase() -> None:
    run = RunData.from_events(journal())
    assert run.phases == {"toxiproxy_ready": 0.05, "replicas_ready": 0.6, "proxies_created": 0.61,
                          "gateway_started": 0.62, "gateway_ready": 0.8, "all_healthy": 0.9, "load_startup": 1.3,
                          "drain": 0.2, "teardown": 0.25}
    assert run.phases_text == ("stack: toxiproxy ready 0.05s, replicas ready 0.60s, proxies created 0.61s, gateway "
                               "started 0.62s, gateway ready 0.80s, all healthy 0.90s; load ready in 1.30s; load "
                               "drained in 0.20s; teardown 0.25s")
    assert run.summary()["phases"] == run.phases
    assert set(STACK_PHASES) >= set(run.phases) - {"load_startup", "drain", "teardown"}


def test_a_phase_that_is_not_a_number_is_left_out() -> None:
    run = RunData.from_events(journal(bogus="x", negative=-1))
    assert "bogus" not in run.phases and "negative" not in run.phases


def test_a_journal_without_phases_shows_none() -> None:
    events = [e for e in journal() if e["type"] != "stack.ready"]
    for event in events:
        event.pop("startup_seconds", None), event.pop("drain_seconds", None), event.pop("teardown_seconds", None)
    assert RunData.from_events(events).phases_text == ""


def test_the_load_learns_the_gateways_address_and_model_on_the_go_line() -> None:
    """The load processes start before the stack (harness/run.py): the go line aims them (harness/load/config.py)."""
    from harness.load.config import LoadConfig
    from harness.scenario import parse_scenario

    scenario = parse_scenario("name: p\nupstreams: [{name: chat}]\nload: {duration: 2s}\n", "p.yaml")
    config = LoadConfig.for_scenario(scenario, "")
    aimed = config.aimed('{"host": "http://127.0.0.1:30001", "model": "chat"}\n')
    assert (aimed.host, aimed.model) == ("http://127.0.0.1:30001", "chat")
    assert aimed.model_dump(exclude={"host", "model"}) == config.model_dump(exclude={"host", "model"})
    assert config.aimed("go\n") == config  # a bare go: as configured
    assert config.aimed('["not", "a", "target"]\n') == config
    assert config.aimed('{"host": 5}\n') == config  # a field of the wrong type is ignored, never a traceback
