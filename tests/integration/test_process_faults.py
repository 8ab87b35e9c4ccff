"""Process faults and OOM kills on the real local stack: the kernel does what the journal says.

Each test starts Envoy, Toxiproxy and fake replicas with LocalRuntime, injects one fault
through the Stack (as a run does), and checks the process itself (its pid, its state in
/proc, the kernel's OOM counter of its memory cgroup) and the gateway's view of it. Bounds
come from the scenario's health-check settings, with margin for a busy machine.
"""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.cgroups import (
    CgroupUnavailable,
    Hierarchy,
    MemoryCgroup,
    find_hierarchy,
    make_v2_cgroup,
    parse_mountinfo,
    write_cgroup_file,
)
from harness.faults import FAULTS
from harness.processes import ProcessGroup
from harness.runtimes.base import Stack
from harness.runtimes.local import LocalRuntime
from harness.scenario import Scenario, parse_scenario

from .conftest import CHAOSGATE, ROOT, processes_of_run, wait_for

SCENARIO = """
name: {name}
gateway:
  health_check: {{interval: 500ms, timeout: 300ms, unhealthy_threshold: 2, healthy_threshold: 1, no_traffic_interval: 500ms}}
  panic_threshold: 0
upstreams:
  - {{name: chat, replicas: 2, restart: {{initial_backoff: 1s, factor: 2, max_backoff: 10s}}{extra}}}
load: {{duration: 30s}}
"""
PROCESS_KINDS = {kind for kind, fault in FAULTS.items() if fault.needs}


def scenario(name: str, extra: str = "") -> Scenario:
    return parse_scenario(SCENARIO.format(name=name, extra=extra), "test.yaml")


def detection_bound(s: Scenario) -> float:
    hc = s.gateway.health_check
    assert hc is not None
    return (hc.unhealthy_threshold + 1) * (hc.interval + hc.timeout) + 3.0  # margin for a busy machine


def readmission_bound(s: Scenario, upstream_restart: float = 0.0) -> float:
    hc = s.gateway.health_check
    assert hc is not None
    return upstream_restart + 10.0 + (hc.healthy_threshold + 1) * hc.interval  # 10s: a Python fake's start, loaded


class Live:
    def __init__(self, s: Scenario, run_dir: Path) -> None:
        self.scenario = s
        self.runtime = LocalRuntime()
        self.stack: Stack = self.runtime.up(s, run_dir)
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.processes.watch(lambda type, **fields: self.events.append((type, fields)))

    @property
    def processes(self) -> Any:
        return self.stack.processes()

    def healthy(self, replica: str) -> bool | None:
        health = self.stack.replica_health().get(replica)
        return None if health is None else health.healthy

    def of_type(self, type: str) -> list[dict[str, Any]]:
        return [fields for t, fields in self.events if t == type]


@pytest.fixture
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Live]:
    extra = getattr(request, "param", "")
    stack = Live(scenario(f"proc-{request.node.name[:20]}".replace("[", "-").replace("]", ""), extra), tmp_path / "run")
    try:
        yield stack
    finally:
        stack.runtime.down()
    assert processes_of_run(tmp_path / "run") == [], "the stack was torn down"


def proc_state(pid: int) -> str:
    return (Path("/proc") / str(pid) / "stat").read_text().split(") ", 1)[1][0]


def memory_cgroup_of(pid: int) -> Path:
    """The memory cgroup the kernel says ``pid`` is in (v1: the memory line; v2: the unified "0::" line)."""
    return find_hierarchy().cgroup_of(pid)


def test_every_process_fault_kind_has_a_live_test() -> None:
    tested = {name.removeprefix("test_").removesuffix("_fault") for name in globals()
              if name.startswith("test_") and name.endswith("_fault")}
    assert PROCESS_KINDS <= tested


@pytest.mark.integration
def test_process_kill_fault(live: Live) -> None:
    fault = FAULTS["process_kill"].model_validate({"kind": "process_kill", "target": "chat[0]", "at": 0, "for": 1})
    before = live.processes.pid("chat[0]")
    port = live.stack.replicas["chat[0]"].port
    fault.inject(live.stack, "chat[0]")
    wait_for(lambda: bool(live.of_type("process.exited")), 5.0, "the supervisor to see the kill")
    exited = live.of_type("process.exited")[0]
    assert exited["pid"] == before and exited["signal"] == "SIGKILL" and exited["status"] == -signal.SIGKILL
    assert exited["oom"] is False
    wait_for(lambda: live.healthy("chat[0]") is False, detection_bound(live.scenario), "Envoy to eject the killed replica")
    wait_for(lambda: bool(live.of_type("process.ready")), readmission_bound(live.scenario, 1.0), "the restart")
    after = live.processes.pid("chat[0]")
    assert after is not None and after != before, "a new process"
    restarted = live.of_type("process.restarted")[0]
    assert restarted["pid"] == after and restarted["backoff_s"] >= 1.0 and restarted["attempt"] == 1
    assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200, "on the same port"
    wait_for(lambda: live.healthy("chat[0]") is True, readmission_bound(live.scenario), "Envoy to readmit it")
    fault.clear(live.stack, "chat[0]")


@pytest.mark.integration
def test_process_freeze_fault(live: Live) -> None:
    fault = FAULTS["process_freeze"].model_validate({"kind": "process_freeze", "target": "chat[0]", "at": 0, "for": 1})
    pid = live.processes.pid("chat[0]")
    assert proc_state(pid) in "SR"
    fault.inject(live.stack, "chat[0]")
    wait_for(lambda: proc_state(pid) == "T", 2.0, "the process to be stopped by SIGSTOP")
    wait_for(lambda: live.healthy("chat[0]") is False, detection_bound(live.scenario), "Envoy to eject the frozen replica")
    fault.clear(live.stack, "chat[0]")
    wait_for(lambda: proc_state(pid) in "SR", 2.0, "the process to run again after SIGCONT")
    wait_for(lambda: live.healthy("chat[0]") is True, readmission_bound(live.scenario), "Envoy to readmit it")
    assert live.processes.pid("chat[0]") == pid and live.of_type("process.exited") == [], "the same process, never killed"


@pytest.mark.integration
def test_process_restart_fault(live: Live) -> None:
    fault = FAULTS["process_restart"].model_validate({"kind": "process_restart", "target": "chat[1]", "at": 0, "for": 1})
    before = live.processes.pid("chat[1]")
    fault.inject(live.stack, "chat[1]")
    assert live.of_type("process.exited")[0]["cause"] == "restart"
    assert live.of_type("process.restarted")[0]["backoff_s"] == 0.0
    wait_for(lambda: bool(live.of_type("process.ready")), readmission_bound(live.scenario), "the restarted replica")
    assert live.processes.pid("chat[1]") not in (None, before)
    wait_for(lambda: live.healthy("chat[1]") is True, readmission_bound(live.scenario), "Envoy to see it healthy")


@pytest.mark.integration
def test_port_change_fault(live: Live) -> None:
    fault = FAULTS["port_change"].model_validate({"kind": "port_change", "target": "chat[0]", "at": 0, "for": 1})
    home = live.stack.replicas["chat[0]"].port
    fault.inject(live.stack, "chat[0]")
    moved = live.of_type("process.restarted")[0]["port"]
    assert moved != home
    wait_for(lambda: bool(live.of_type("process.ready")), readmission_bound(live.scenario), "the moved replica")
    assert httpx.get(f"http://127.0.0.1:{moved}/health", timeout=2).status_code == 200, "healthy on its new port"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{home}/health", timeout=2)
    wait_for(lambda: live.healthy("chat[0]") is False, detection_bound(live.scenario),
             "Envoy to eject the replica its definition points at the wrong port of")
    fault.clear(live.stack, "chat[0]")
    assert live.of_type("process.restarted")[1]["port"] == home
    wait_for(lambda: len(live.of_type("process.ready")) == 2, readmission_bound(live.scenario), "the move back")
    assert httpx.get(f"http://127.0.0.1:{home}/health", timeout=2).status_code == 200
    wait_for(lambda: live.healthy("chat[0]") is True, readmission_bound(live.scenario), "Envoy to readmit it")


@pytest.mark.integration
@pytest.mark.parametrize("live", [", memory_limit: 128Mi"], indirect=True, ids=["128Mi"])
def test_oom_fault(live: Live) -> None:
    hierarchy = find_hierarchy()
    pid = live.processes.pid("chat[0]")
    cgroup = memory_cgroup_of(pid)
    assert cgroup.parts[-3] == "chaosgate" and cgroup.name == "chat_0_", "the replica runs in its memory cgroup"
    limit, swap = LIMIT_FILES[hierarchy.version]
    assert int((cgroup / limit).read_text()) == 128 * 1024**2
    if (cgroup / swap[0]).exists():  # swap accounted: none past the limit
        assert int((cgroup / swap[0]).read_text()) == swap[1]
    assert memory_cgroup_of(live.processes.pid("chat[1]")).name == "chat_1_"
    kills_before = _oom_kills(cgroup, hierarchy.version)
    fault = FAULTS["oom"].model_validate({"kind": "oom", "target": "chat[0]", "at": 0, "for": 1, "mb_per_s": 300})
    fault.inject(live.stack, "chat[0]")
    wait_for(lambda: bool(live.of_type("process.exited")), 10.0, "the kernel's OOM killer")
    exited = live.of_type("process.exited")[0]
    assert exited["oom"] is True and exited["signal"] == "SIGKILL" and exited["pid"] == pid
    assert _oom_kills(cgroup, hierarchy.version) == kills_before + 1 == exited["oom_kills"], "the kernel counted the kill"
    wait_for(lambda: live.healthy("chat[0]") is False, detection_bound(live.scenario), "Envoy to eject it")
    wait_for(lambda: bool(live.of_type("process.ready")), readmission_bound(live.scenario, 1.0), "the restart")
    new_pid = live.processes.pid("chat[0]")
    assert str(new_pid) in (cgroup / "cgroup.procs").read_text().split(), "restarted inside the same limit"
    wait_for(lambda: live.healthy("chat[0]") is True, readmission_bound(live.scenario), "Envoy to readmit it")
    fault.clear(live.stack, "chat[0]")
    live.runtime.down()
    assert not cgroup.exists() and not cgroup.parent.exists(), "teardown removed the run's cgroups"


# The kernel's own files, read here without harness.cgroups: version -> (limit file, (swap file, its value)).
LIMIT_FILES = {1: ("memory.limit_in_bytes", ("memory.memsw.limit_in_bytes", 128 * 1024**2)),
               2: ("memory.max", ("memory.swap.max", 0))}


def _oom_kills(cgroup: Path, version: int) -> int:
    text = (cgroup / ("memory.oom_control" if version == 1 else "memory.events")).read_text()
    return int(dict(line.split() for line in text.splitlines())["oom_kill"])


@pytest.mark.integration
@pytest.mark.parametrize("root", ["no-cgroup", "read-only"])
def test_a_machine_without_a_usable_memory_controller_is_refused_plainly(root: str, tmp_path: Path) -> None:
    (tmp_path / "scenario.yaml").write_text((ROOT / "scenarios" / "oom-kill.yaml").read_text())
    env_root = tmp_path / root
    env_root.mkdir()
    if root == "read-only":  # a cgroup v2 tree on a read-only bind mount, as a container sees /sys/fs/cgroup
        (env_root / "cgroup.controllers").write_text("cpu memory pids\n")
        subprocess.run(["mount", "--bind", str(env_root), str(env_root)], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(env_root)], check=True)
    try:
        result = subprocess.run([*CHAOSGATE, "run", str(tmp_path / "scenario.yaml"), "--out", str(tmp_path / "out"),
                                 "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                                env={**os.environ, "CHAOSGATE_CGROUP_MEMORY_ROOT": str(env_root)})
    finally:
        if root == "read-only":
            subprocess.run(["umount", str(env_root)], check=True)
    output = result.stderr + result.stdout
    assert result.returncode == 2, output
    assert "memory_limit needs a memory cgroup per replica" in output and "--runtime docker" in output, output
    assert ("mounted read-only" if root == "read-only" else "neither a cgroup v2 hierarchy") in output, output
    assert "Traceback" not in output
    assert not (tmp_path / "out" / "oom-kill" / "logs").exists(), "refused before any component started"
    assert processes_of_run(tmp_path / "out" / "oom-kill") == []


@pytest.mark.integration
def test_a_user_who_is_not_root_is_refused_plainly() -> None:
    """The machine's own hierarchy, checked by an unprivileged user (nobody, through setpriv):
    refused with the reason and the runtime that works. harness.cgroups needs the standard
    library only, so the system's python3 runs it (the project's .venv may not be readable)."""
    check = ("import sys; sys.path.insert(0, sys.argv[1]); from harness.cgroups import memory_hierarchy\n"
             "try:\n    memory_hierarchy()\nexcept Exception as exc:\n    print(type(exc).__name__, exc)")
    result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c",
                             check, str(ROOT)], capture_output=True, text=True, timeout=30, cwd="/")
    assert result.stdout.startswith("CgroupUnavailable "), result.stdout + result.stderr
    assert "is not writable by this user" in result.stdout and "--runtime docker" in result.stdout


@pytest.mark.integration
def test_the_kernels_cgroup2_mount_is_judged_as_it_is() -> None:
    """On this v1 host the cgroup2 mount holds no memory controller: the real kernel's files say so,
    and a write of +memory is refused as the fake trees of tests/unit/test_cgroups.py assume (ENOENT)."""
    mounts = [m for m in parse_mountinfo(Path("/proc/self/mountinfo").read_text()) if m.fstype == "cgroup2"]
    assert mounts, "every Linux host the harness supports mounts a cgroup2 hierarchy (unified or hybrid)"
    hierarchy = find_hierarchy(root=mounts[0].point, parent="")
    assert hierarchy.version == 2
    if "memory" in (mounts[0].point / "cgroup.controllers").read_text().split():
        hierarchy.check()  # a v2 host: the memory controller is there and the harness can write
        return
    with pytest.raises(CgroupUnavailable, match="memory controller is not available"):
        hierarchy.check()
    with pytest.raises(OSError) as refused:
        write_cgroup_file(mounts[0].point / "cgroup.subtree_control", "+memory")
    assert refused.value.errno == errno.ENOENT


@pytest.mark.integration
def test_the_v2_protocol_on_the_kernels_cgroup2_with_the_controller_it_has(tmp_path: Path) -> None:
    """What can be checked of cgroup v2 on a v1 host, on the real kernel: the path chaosgate makes
    (the controller enabled down it through cgroup.subtree_control), a replica joining cgroup.procs
    before it runs, /proc/<pid>/cgroup's "0::" line read back, and teardown's rmdir. The host's cgroup2
    has no memory controller, so another one it has stands in for it; memory.max and memory.events
    are checked on a laid-out tree only (tests/unit/test_cgroups.py)."""
    [mount] = [m for m in parse_mountinfo(Path("/proc/self/mountinfo").read_text()) if m.fstype == "cgroup2"][:1]
    available = (mount.point / "cgroup.controllers").read_text().split()
    stand_in = "memory" if "memory" in available else available[0]
    root_had = stand_in in (mount.point / "cgroup.subtree_control").read_text().split()
    hierarchy = Hierarchy(2, mount.point)
    leaf = MemoryCgroup(f"v2-probe-{os.getpid()}", "chat[0]", 128 * 1024**2, hierarchy)
    group = ProcessGroup(tmp_path)
    try:
        make_v2_cgroup(hierarchy, leaf.path, stand_in, "chat[0]")
        for folder in (mount.point, hierarchy.base, leaf.path.parent):
            assert stand_in in (folder / "cgroup.subtree_control").read_text().split(), folder
        assert stand_in in (leaf.path / "cgroup.controllers").read_text().split(), "the kernel gave the leaf the controller"
        assert any(f.name.startswith(f"{stand_in}.") for f in leaf.path.iterdir()), "and its files"
        child = group.start("sleeper", [sys.executable, "-c", "import time; time.sleep(30)"], cgroup_procs=leaf.procs_file)
        assert hierarchy.cgroup_of(child.process.pid) == leaf.path
        assert str(child.process.pid) in leaf.procs_file.read_text().split()
        assert leaf.oom_kills() == 0 and leaf.failcnt() == 0, "no memory.events here: nothing counted, no error"
    finally:
        group.stop_all()
        leaf.remove()
        if not root_had:  # leave the host's root as it was
            try:
                write_cgroup_file(mount.point / "cgroup.subtree_control", f"-{stand_in}")
            except OSError:
                pass
    assert not leaf.path.exists() and not hierarchy.base.exists(), "teardown removed every folder it made"


@pytest.mark.integration
@pytest.mark.parametrize(("name", "event"), [("oom-kill", '"oom":true'), ("process-freeze", '"fault.started"')],
                         ids=["after-oom-kill", "while-frozen"])
def test_interrupt_removes_the_cgroups_and_thaws_frozen_replicas(name: str, event: str, tmp_path: Path) -> None:
    run_dir = tmp_path / name
    journal = run_dir / "journal.jsonl"
    cgroup_run = find_hierarchy().base / \
        f"{name}-{hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:8]}"
    harness = subprocess.Popen([*CHAOSGATE, "run", str(ROOT / "scenarios" / f"{name}.yaml"), "--out", str(tmp_path),
                                "--quiet"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: journal.exists() and event in journal.read_text(), 60, f"{event} in the journal")
        assert processes_of_run(run_dir)
        if name == "oom-kill":
            assert cgroup_run.is_dir(), "the run's memory cgroups exist while it runs"
        harness.send_signal(signal.SIGINT)
        _, stderr = harness.communicate(timeout=30)
    finally:
        if harness.poll() is None:
            harness.kill()
    assert harness.returncode == 130, stderr
    wait_for(lambda: not processes_of_run(run_dir), 5, "every process of the stack to end")
    assert not cgroup_run.exists(), "teardown removed the run's memory cgroups"
