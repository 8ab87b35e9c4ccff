"""Process faults and OOM kills on a real docker stack: the engine and the kernel do what the journal says.

Each test starts the stack with DockerRuntime, injects one fault through the Stack (as a run
does), and checks the replica's container as the engine reports it (status, State.OOMKilled,
its memory limit), the kernel's view (the container's freezer and memory cgroups), the journal's
process events, and the gateway's view of the replica. Bounds come from the scenario's
health-check and restart settings, with margin for a busy machine.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from harness.cgroups import find_hierarchy, parse_limit
from harness.faults import FAULTS
from harness.runtimes.base import Stack
from harness.runtimes.docker import DockerRuntime
from harness.scenario import Scenario, parse_scenario

from .conftest import wait_for
from .docker_helpers import docker_engine, leftovers

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

__all__ = ["docker_engine"]

SCENARIO = """
name: {name}
gateway:
  health_check: {{interval: 500ms, timeout: 300ms, unhealthy_threshold: 2, healthy_threshold: 1, no_traffic_interval: 500ms}}
  panic_threshold: 0
upstreams:
  - {{name: chat, replicas: 2, restart: {{initial_backoff: 1s, factor: 2, max_backoff: 10s}}{extra}}}
load: {{duration: 30s}}
"""
PROCESS_KINDS = {kind for kind, fault in FAULTS.items() if fault.needs & DockerRuntime.capabilities}
MiB = 1024 ** 2


def scenario(name: str, extra: str = "") -> Scenario:
    return parse_scenario(SCENARIO.format(name=name, extra=extra), "test.yaml")


def detection_bound(s: Scenario) -> float:
    hc = s.gateway.health_check
    assert hc is not None
    return (hc.unhealthy_threshold + 1) * (hc.interval + hc.timeout) + 3.0  # margin for a busy machine


def readmission_bound(s: Scenario, backoff: float = 0.0) -> float:
    hc = s.gateway.health_check
    assert hc is not None
    return backoff + 10.0 + (hc.healthy_threshold + 1) * hc.interval  # 10s: a container's start, loaded


class Live:
    def __init__(self, s: Scenario, run_dir: Path) -> None:
        self.scenario = s
        self.run_dir = run_dir
        self.runtime = DockerRuntime(log=lambda message: None)
        self.stack: Stack = self.runtime.up(s, run_dir)
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.processes.watch(lambda type, **fields: self.events.append((type, fields)))

    @property
    def processes(self) -> Any:
        return self.stack.processes()

    def container(self, replica: str) -> Container:
        container = self.runtime.container(replica)
        container.reload()
        return container

    def healthy(self, replica: str) -> bool | None:
        health = self.stack.replica_health().get(replica)
        return None if health is None else health.healthy

    def of_type(self, type: str) -> list[dict[str, Any]]:
        return [fields for t, fields in self.events if t == type]

    def health_failures(self, replica: str) -> list[str]:
        """Envoy's health-check failure types for ``replica``, in order, from its event log in the run folder."""
        path = self.run_dir / "envoy-health.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        address = self.stack.gateway_address(replica)
        return [event["health_check_failure_event"]["failure_type"] for event in map(json.loads, lines)
                if "health_check_failure_event" in event
                and f"{event['host']['socket_address']['address']}:{event['host']['socket_address']['port_value']}" == address]


@pytest.fixture
def live(request: pytest.FixtureRequest, tmp_path: Path, docker_engine: DockerClient) -> Iterator[Live]:
    extra = getattr(request, "param", "")
    run_dir = tmp_path / "run"
    stack = Live(scenario(f"dproc-{request.node.name[5:25]}".replace("[", "-").replace("]", ""), extra), run_dir)
    try:
        yield stack
    finally:
        stack.runtime.down()
    assert leftovers(docker_engine, run_dir) == [], "teardown removed the run's containers and network"


def cgroup_of(pid: int, controller: str) -> Path:
    """The cgroup v1 folder of ``controller`` the kernel says ``pid`` is in."""
    for line in (Path("/proc") / str(pid) / "cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return Path("/sys/fs/cgroup") / controller / path.lstrip("/")
    raise AssertionError(f"pid {pid} has no {controller} cgroup")


def freezer_state(pid: int) -> str:
    """FROZEN or THAWED, as the kernel says of ``pid``'s cgroup: v1's freezer.state, or v2's cgroup.events."""
    hierarchy = find_hierarchy()
    if hierarchy.version == 1:
        return (cgroup_of(pid, "freezer") / "freezer.state").read_text().strip()
    events = dict(line.split() for line in (hierarchy.cgroup_of(pid) / "cgroup.events").read_text().splitlines())
    return "FROZEN" if events.get("frozen") == "1" else "THAWED"


def memory_limits(pid: int) -> tuple[Path, int | None, int | None]:
    """``pid``'s memory cgroup, its memory limit and its swap allowance beyond that limit, in bytes (None:
    no limit or not accounted): v1's memory.limit_in_bytes and memsw minus it, or v2's memory.max and memory.swap.max."""
    hierarchy = find_hierarchy()
    folder = hierarchy.cgroup_of(pid)
    if hierarchy.version == 1:
        memory = parse_limit((folder / "memory.limit_in_bytes").read_text())
        memsw = folder / "memory.memsw.limit_in_bytes"
        total = parse_limit(memsw.read_text()) if memsw.exists() else None
        return folder, memory, None if total is None or memory is None else total - memory
    swap = folder / "memory.swap.max"
    return folder, parse_limit((folder / "memory.max").read_text()), parse_limit(swap.read_text()) if swap.exists() else None


def test_every_process_fault_kind_has_a_live_docker_test() -> None:
    tested = {name.removeprefix("test_docker_").removesuffix("_fault") for name in globals()
              if name.startswith("test_docker_") and name.endswith("_fault")}
    assert PROCESS_KINDS and PROCESS_KINDS <= tested


@pytest.mark.integration
def test_docker_process_kill_fault(live: Live) -> None:
    fault = FAULTS["process_kill"].model_validate({"kind": "process_kill", "target": "chat[0]", "at": 0, "for": 1})
    before = live.processes.pid("chat[0]")
    container_id = live.container("chat[0]").id
    assert before is not None and cgroup_of(before, "memory").name == container_id, "the fake is the container's process"
    port = live.stack.replicas["chat[0]"].port
    fault.inject(live.stack, "chat[0]")
    wait_for(lambda: bool(live.of_type("process.exited")), 5.0, "the supervisor to see the container die")
    exited = live.of_type("process.exited")[0]
    assert exited["pid"] == before and exited["signal"] == "SIGKILL" and exited["status"] == -signal.SIGKILL
    assert exited["exit_code"] == 128 + signal.SIGKILL and exited["oom"] is False
    assert live.container("chat[0]").status == "exited", "the container is dead until its backoff has passed"
    wait_for(lambda: live.healthy("chat[0]") is False, detection_bound(live.scenario), "Envoy to eject the dead replica")
    # The replica's network namespace outlives its fake (a pod's sandbox): Toxiproxy's dial is refused at
    # once, as on local, rather than hanging on a name that no longer resolves.
    # Envoy flushes its event log every 10s (its --file-flush-interval-msec default).
    wait_for(lambda: len(live.health_failures("chat[0]")) >= 2, 15.0, "Envoy's health events in its log")
    assert live.health_failures("chat[0]")[:2] == ["NETWORK", "NETWORK"], live.health_failures("chat[0]")
    wait_for(lambda: bool(live.of_type("process.ready")), readmission_bound(live.scenario, 1.0), "the restart")
    after = live.processes.pid("chat[0]")
    assert after is not None and after != before, "a new process"
    restarted = live.of_type("process.restarted")[0]
    assert restarted["pid"] == after and restarted["backoff_s"] >= 1.0 and restarted["attempt"] == 1
    assert live.container("chat[0]").id == container_id and live.container("chat[0]").status == "running"
    assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200, "on the same host port"
    wait_for(lambda: live.healthy("chat[0]") is True, readmission_bound(live.scenario), "Envoy to readmit it")
    fault.clear(live.stack, "chat[0]")


@pytest.mark.integration
def test_docker_process_freeze_fault(live: Live) -> None:
    fault = FAULTS["process_freeze"].model_validate({"kind": "process_freeze", "target": "chat[0]", "at": 0, "for": 1})
    pid = live.processes.pid("chat[0]")
    assert freezer_state(pid) == "THAWED"
    fault.inject(live.stack, "chat[0]")
    assert live.container("chat[0]").status == "paused"
    wait_for(lambda: freezer_state(pid) == "FROZEN", 2.0, "the kernel's freezer to freeze the container")
    wait_for(lambda: live.healthy("chat[0]") is False, detection_bound(live.scenario), "Envoy to eject the frozen replica")
    wait_for(lambda: "NETWORK_TIMEOUT" in live.health_failures("chat[0]"), 15.0,
             "Envoy's log to show the frozen replica's checks timing out")
    fault.clear(live.stack, "chat[0]")
    wait_for(lambda: freezer_state(pid) == "THAWED", 2.0, "the container to be thawed")
    assert live.container("chat[0]").status == "running"
    wait_for(lambda: live.healthy("chat[0]") is True, readmission_bound(live.scenario), "Envoy to readmit it")
    assert live.processes.pid("chat[0]") == pid and live.of_type("process.exited") == [], "the same process, never killed"


@pytest.mark.integration
def test_docker_process_restart_fault(live: Live) -> None:
    fault = FAULTS["process_restart"].model_validate({"kind": "process_restart", "target": "chat[1]", "at": 0, "for": 1})
    before = live.processes.pid("chat[1]")
    started = live.container("chat[1]").attrs["State"]["StartedAt"]
    fault.inject(live.stack, "chat[1]")
    exited = live.of_type("process.exited")[0]
    assert exited["cause"] == "restart" and exited["pid"] == before and exited["status"] == 0, "stopped by SIGTERM"
    assert live.of_type("process.restarted")[0]["backoff_s"] == 0.0
    wait_for(lambda: bool(live.of_type("process.ready")), readmission_bound(live.scenario), "the restarted replica")
    assert live.processes.pid("chat[1]") not in (None, before)
    assert live.container("chat[1]").attrs["State"]["StartedAt"] != started, "the engine started the container again"
    wait_for(lambda: live.healthy("chat[1]") is True, readmission_bound(live.scenario), "Envoy to see it healthy")
    assert len(live.of_type("process.exited")) == 1, "the supervisor did not take the stop for a crash"


@pytest.mark.integration
def test_docker_port_change_fault(live: Live) -> None:
    fault = FAULTS["port_change"].model_validate({"kind": "port_change", "target": "chat[0]", "at": 0, "for": 1})
    home = live.stack.replicas["chat[0]"].port
    first = live.container("chat[0]").id
    fault.inject(live.stack, "chat[0]")
    moved = live.of_type("process.restarted")[0]["port"]
    assert moved != home
    assert live.container("chat[0]").id != first, "the fake's container was recreated on its spare port"
    wait_for(lambda: bool(live.of_type("process.ready")), readmission_bound(live.scenario), "the moved replica")
    assert httpx.get(f"http://127.0.0.1:{moved}/health", timeout=2).status_code == 200, "healthy on its new port"
    with pytest.raises(httpx.TransportError):  # nobody listens on the port its definition names
        httpx.get(f"http://127.0.0.1:{home}/health", timeout=2)
    wait_for(lambda: live.healthy("chat[0]") is False, detection_bound(live.scenario),
             "Envoy to eject the replica its definition points at the wrong port of")
    fault.clear(live.stack, "chat[0]")
    assert live.of_type("process.restarted")[1]["port"] == home
    wait_for(lambda: len(live.of_type("process.ready")) == 2, readmission_bound(live.scenario), "the move back")
    assert httpx.get(f"http://127.0.0.1:{home}/health", timeout=2).status_code == 200
    wait_for(lambda: live.healthy("chat[0]") is True, readmission_bound(live.scenario), "Envoy to readmit it")
    assert live.of_type("process.exited")[0]["cause"] == "restart" and len(live.of_type("process.exited")) == 2


@pytest.mark.integration
@pytest.mark.parametrize("live", [", memory_limit: 128Mi"], indirect=True, ids=["128Mi"])
def test_docker_oom_fault(live: Live) -> None:
    container = live.container("chat[0]")
    host_config = container.attrs["HostConfig"]
    assert host_config["Memory"] == host_config["MemorySwap"] == 128 * MiB, "the limit, and no swap beyond it"
    pid = live.processes.pid("chat[0]")
    cgroup, memory, swap = memory_limits(pid)
    assert container.id in cgroup.name and memory == 128 * MiB and swap in (0, None), (cgroup, memory, swap)
    assert live.container("chat[1]").attrs["HostConfig"]["Memory"] == 128 * MiB
    fault = FAULTS["oom"].model_validate({"kind": "oom", "target": "chat[0]", "at": 0, "for": 1, "mb_per_s": 300})
    fault.inject(live.stack, "chat[0]")
    wait_for(lambda: bool(live.of_type("process.exited")), 10.0, "the kernel's OOM killer")
    exited = live.of_type("process.exited")[0]
    assert exited["oom"] is True and exited["signal"] == "SIGKILL" and exited["pid"] == pid, exited
    assert exited["exit_code"] == 137 and exited["oom_kills"] == 1, "the engine saw the kernel's OOM kill"
    wait_for(lambda: live.healthy("chat[0]") is False, detection_bound(live.scenario), "Envoy to eject it")
    wait_for(lambda: bool(live.of_type("process.ready")), readmission_bound(live.scenario, 1.0), "the restart")
    restarted = live.container("chat[0]")
    assert restarted.attrs["HostConfig"]["Memory"] == 128 * MiB, "restarted inside the same limit"
    assert memory_limits(live.processes.pid("chat[0]"))[1] == 128 * MiB
    wait_for(lambda: live.healthy("chat[0]") is True, readmission_bound(live.scenario), "Envoy to readmit it")
    fault.clear(live.stack, "chat[0]")
    assert live.of_type("process.exited") == [exited], "killed once: the restarted process does not grow"
    # The engine keeps State.OOMKilled set across the restart; a later death that is not the OOM killer's
    # must still be journalled as such.
    assert restarted.attrs["State"]["OOMKilled"] is True
    live.processes.send("chat[0]", signal.SIGKILL)
    wait_for(lambda: len(live.of_type("process.exited")) == 2, 5.0, "the supervisor to see the second death")
    assert live.of_type("process.exited")[1]["oom"] is False and live.of_type("process.exited")[1]["oom_kills"] == 1
