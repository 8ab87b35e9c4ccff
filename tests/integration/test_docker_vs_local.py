"""Scenarios on each runtime: the same verdicts (expectation kinds, pass/fail) and the
same journal format; only the runtime, the addresses and the measurements differ."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.journal import read_journal

from .conftest import ROOT, ShippedRun
from .docker_helpers import docker_engine, leftovers

if TYPE_CHECKING:
    from docker import DockerClient

# A Toxiproxy fault, and the OOM kill: a memory limit, the kernel's kill and the supervisor's restart
# (a cgroup and child processes on local; the container's limit and the engine on docker).
SCENARIOS = ("replica-reset", "oom-kill")
__all__ = ["docker_engine"]


def _run(shipped_run: ShippedRun, scenario: str, runtime: str) -> tuple[Path, dict[str, Any], list[dict[str, Any]]]:
    """The session's run of the shipped scenario on ``runtime`` (shared with test_shipped_scenarios and
    test_docker_scenarios, which judge each run in full)."""
    run = shipped_run(ROOT / "scenarios" / f"{scenario}.yaml", runtime)
    assert run.result.returncode == 0, f"{runtime}: {run.result.stdout}{run.result.stderr}"
    return run.run_dir, json.loads((run.run_dir / "summary.json").read_text()), read_journal(run.run_dir / "journal.jsonl")


CORE_EVENTS = ("run.started", "stack.ready", "load.started", "request", "health", "fault.started",
               "fault.cleared", "load.finished", "run.finished")
# The supervisor's events: docker's process.exited adds the engine's exit_code and container id.
PROCESS_EVENTS = ("process.exited", "process.restarted", "process.ready")


def _shape(events: list[dict[str, Any]], types: tuple[str, ...] = CORE_EVENTS) -> dict[str, set[str]]:
    """Each event type of ``types`` with the keys every event of that type has: the journal's format
    without its values (optional keys such as a failed request's body depend on what happened)."""
    shape: dict[str, set[str]] = {}
    for event in events:
        if event["type"] in types:
            keys = set(event)
            shape[event["type"]] = shape[event["type"]] & keys if event["type"] in shape else keys
    return shape


@pytest.mark.integration
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_same_scenario_same_verdicts_on_both_runtimes(scenario: str, shipped_run: ShippedRun,
                                                      docker_engine: DockerClient) -> None:
    _, local_summary, local_events = _run(shipped_run, scenario, "local")
    docker_dir, docker_summary, docker_events = _run(shipped_run, scenario, "docker")

    def verdicts(summary: dict[str, Any]) -> list[tuple[str, Any, bool]]:
        return [(v["kind"], json.dumps(v["params"], sort_keys=True), v["passed"]) for v in summary["expectations"]]

    assert verdicts(docker_summary) == verdicts(local_summary)
    assert docker_summary["passed"] == local_summary["passed"] is True
    assert set(docker_summary) == set(local_summary), "summary.json has the same fields"
    for local_verdict, docker_verdict in zip(local_summary["expectations"], docker_summary["expectations"], strict=True):
        assert set(docker_verdict) == set(local_verdict)
        assert docker_verdict["bound"] == local_verdict["bound"]

    assert set(_shape(local_events)) == set(CORE_EVENTS)
    assert _shape(docker_events) == _shape(local_events), "the journal has the same events with the same fields"
    assert local_events[0]["runtime"] == "local" and docker_events[0]["runtime"] == "docker"
    local_ready = next(e for e in local_events if e["type"] == "stack.ready")
    docker_ready = next(e for e in docker_events if e["type"] == "stack.ready")
    assert set(docker_ready["endpoints"]) == set(local_ready["endpoints"])
    assert docker_ready["endpoints"]["replicas"].keys() == local_ready["endpoints"]["replicas"].keys()

    local_process, docker_process = _shape(local_events, PROCESS_EVENTS), _shape(docker_events, PROCESS_EVENTS)
    assert set(docker_process) == set(local_process), "the same supervisor events"
    for type, keys in local_process.items():
        assert keys <= docker_process[type], f"{type}: docker's lacks {keys - docker_process[type]}"

    def deaths(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(e["replica"], e["status"], e["signal"], e["oom"], e["restart_in_s"])
                for e in events if e["type"] == "process.exited"]

    assert deaths(docker_events) == deaths(local_events), "the same deaths, as the kernel reported them"
    if scenario == "oom-kill":
        assert deaths(local_events) == [("chat[0]", -9, "SIGKILL", True, 3.0)]
    assert leftovers(docker_engine, docker_dir) == []
