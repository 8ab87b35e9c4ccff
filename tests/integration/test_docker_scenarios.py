"""Every shipped scenario runs on the docker runtime and every expectation holds, with the
same journal as on local; nothing of the run is left in the engine afterwards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.journal import read_journal
from harness.runtimes.base import unsupported
from harness.runtimes.docker import DockerRuntime
from harness.scenario import Scenario, load_scenario

from .conftest import ROOT, ShippedRun
from .docker_helpers import docker_engine, leftovers

if TYPE_CHECKING:
    from docker import DockerClient

# Scenarios whose faults or settings need a capability the docker runtime does not declare are
# refused by it with a clear error (harness.runtimes.base.check_supported), so they are not run here.
SHIPPED = sorted(path for path in (ROOT / "scenarios").glob("*.yaml")
                 if not unsupported(load_scenario(path), "docker", DockerRuntime.capabilities))
# The process faults and OOM kill, injected through the engine (harness/runtimes/docker_supervisor.py).
PROCESS_SCENARIOS = ("oom-kill", "process-kill", "process-freeze", "port-change")
__all__ = ["docker_engine"]


def test_the_process_fault_scenarios_run_on_docker() -> None:
    assert set(PROCESS_SCENARIOS) <= {path.stem for path in SHIPPED}


def _assert_process_events(scenario: Scenario, events: list[dict[str, Any]]) -> None:
    """What each process fault must leave in the journal: the engine's and the kernel's account of it."""
    kinds = {fault.kind for fault in scenario.faults}
    process_kinds = {"oom", "process_kill", "process_freeze", "process_restart", "port_change"}
    targets = {replica for e in events if e["type"] == "fault.started" and e["kind"] in process_kinds
               for replica in e["replicas"]}
    exited = [e for e in events if e["type"] == "process.exited"]
    ready = [e for e in events if e["type"] == "process.ready"]
    assert {e["replica"] for e in exited} <= targets, "only the target's container died"
    if "oom" in kinds:  # the container's memory limit, and State.OOMKilled from the engine
        assert any(e["oom"] and e["signal"] == "SIGKILL" and e["exit_code"] == 137 for e in exited), exited
    if "process_kill" in kinds:
        assert any(not e["oom"] and e["signal"] == "SIGKILL" and "cause" not in e for e in exited), exited
    if "process_freeze" in kinds:
        assert exited == [], "a paused container is frozen, not killed"
    if "port_change" in kinds:
        ports = [e["port"] for e in events if e["type"] == "process.restarted"]
        assert len(ports) == 2 and ports[0] != ports[1], "moved to its spare port, then back"
    if kinds & {"oom", "process_kill", "process_restart", "port_change"}:
        assert ready and {e["replica"] for e in ready} <= targets, "the supervisor restarted it and saw it ready"


@pytest.mark.integration
@pytest.mark.parametrize("scenario_file", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_scenario_passes_on_docker(scenario_file: Path, shipped_run: ShippedRun,
                                          docker_engine: DockerClient) -> None:
    scenario = load_scenario(scenario_file)
    result, run_dir = (run := shipped_run(scenario_file, "docker")).result, run.run_dir
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{scenario.name}: PASSED" in result.stdout

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["passed"] and summary["complete"]
    assert [v["kind"] for v in summary["expectations"]] == [e.kind for e in scenario.expect]
    assert all(v["passed"] for v in summary["expectations"]), summary["expectations"]

    events = read_journal(run_dir / "journal.jsonl")
    assert events[0]["type"] == "run.started" and events[0]["runtime"] == "docker"
    assert events[-1]["type"] == "run.finished" and events[-1]["outcome"] == "complete"
    ready = next(e for e in events if e["type"] == "stack.ready")
    for info in ready["endpoints"]["replicas"].values():  # the host uses published loopback ports only
        assert info["url"].startswith("http://127.0.0.1:") and info["proxy_url"].startswith("http://127.0.0.1:")
    assert ready["endpoints"]["gateway"].startswith("http://127.0.0.1:")
    requests = [e for e in events if e["type"] == "request"]
    assert len(requests) > 100
    assert {e["replica"] for e in requests if e["replica"]} == set(scenario.replicas)
    routed = {e["upstream"] for e in requests if e["upstream"]}
    assert routed == {info["gateway_address"] for info in ready["endpoints"]["replicas"].values()}, \
        "the gateway's upstream addresses map to replicas"
    health = [e for e in events if e["type"] == "health"]
    assert {e["replica"] for e in health} == set(scenario.replicas)
    assert {e["fault"] for e in events if e["type"] == "fault.cleared"} == {f.label for f in scenario.faults}
    _assert_process_events(scenario, events)
    if any(pool.dns is not None for pool in scenario.upstreams):  # the fake DNS server ran in the gateway pod
        assert ready["endpoints"]["dns"]["address"].startswith("127.0.0.1:")
        assert (run_dir / "logs" / "dns.log").exists()
    if scenario.gateway.health_check is not None:  # its health-check event log (none without active checks)
        assert (run_dir / "envoy-health.jsonl").stat().st_size > 0, "Envoy wrote its event log into the run folder"
    for component in ("envoy", "toxiproxy", *scenario.replicas):
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in component)
        assert (run_dir / "logs" / f"{name}.log").exists(), f"the output of {component} was saved"
    assert leftovers(docker_engine, run_dir) == [], "the run's containers and network were removed"
