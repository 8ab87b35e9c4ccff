"""A harness killed with SIGKILL mid-run leaves no process and no listener, on every gateway (nginx's
workers included: they are not the harness's children); and when its watchdog was killed with it,
the next run removes what it left (harness/leftovers.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from harness.leftovers import Process, processes
from harness.runtimes.local import LocalRuntime
from harness.scenario import load_scenario

from .conftest import CHAOSGATE, ROOT, require_components, wait_for

SCENARIO = ROOT / "scenarios" / "compare" / "reset.yaml"
REQUESTS_BEFORE_THE_KILL = 20  # the load is running: the kill comes a few seconds in, mid-run


def _start(gateway: str, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*CHAOSGATE, "run", str(SCENARIO), "--gateway", gateway, "--out", str(out), "--quiet"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _journal(run_dir: Path) -> list[dict[str, object]]:
    try:
        lines = (run_dir / "journal.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return []
    events = []
    for line in lines:
        try:
            events.append(json.loads(line))
        except ValueError:  # the line being written
            pass
    return events


def _wait_mid_run(harness: subprocess.Popen[bytes], run_dir: Path) -> list[dict[str, object]]:
    def requests() -> bool:
        assert harness.poll() is None, f"the run ended before the kill (exit {harness.returncode})"
        return sum(e["type"] == "request" for e in _journal(run_dir)) >= REQUESTS_BEFORE_THE_KILL
    wait_for(requests, 120, f"{REQUESTS_BEFORE_THE_KILL} requests of the load")
    return _journal(run_dir)


def is_watchdog(process: Process) -> bool:
    try:
        return b"harness.leftovers" in Path(f"/proc/{process.pid}/cmdline").read_bytes()
    except OSError:
        return False


def descendants(pid: int) -> list[Process]:
    """Every live process below ``pid`` (children, their children, ...)."""
    table = [p for p in processes() if p.state != "Z"]
    found: list[Process] = []
    parents = {pid}
    while new := [p for p in table if p.parent in parents and p not in found]:
        found += new
        parents = {p.pid for p in new}
    return found


def ports(events: list[dict[str, object]]) -> set[int]:
    """Every port the run's stack listened on, from its endpoints in the journal."""
    ready = next(e for e in events if e["type"] == "stack.ready")
    return {int(port) for port in re.findall(r"127\.0\.0\.1:(\d+)", json.dumps(ready["endpoints"]))}


def listening(candidates: set[int]) -> set[int]:
    """Those of ``candidates`` some socket on this machine listens on (TCP, IPv4 or IPv6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) in candidates:
                found.add(int(local.rsplit(":", 1)[1], 16))
    return found


def left_of(run: list[Process]) -> list[Process]:
    """Which of the run's processes (seen before the kill) still run: same pid and start time."""
    now = {(p.pid, p.start) for p in processes() if p.state != "Z"}
    return [p for p in run if (p.pid, p.start) in now]


@pytest.mark.integration
@pytest.mark.parametrize("gateway", ["envoy", "haproxy", "nginx", "litellm"])
def test_a_sigkilled_harness_leaves_no_process_and_no_listener(gateway: str, tmp_path: Path) -> None:
    require_components(gateway)
    run_dir = tmp_path / "reset"
    harness = _start(gateway, tmp_path)
    try:
        events = _wait_mid_run(harness, run_dir)
        run = [p for p in descendants(harness.pid) if not is_watchdog(p)]
        stack_ports = ports(events)
        assert listening(stack_ports), "the stack listens before the kill"
        if gateway == "nginx":  # what the death signal alone left: the workers are not the harness's children
            assert any(p.parent != harness.pid for p in run), [p.command for p in run]
        harness.send_signal(signal.SIGKILL)
        harness.wait(timeout=10)
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait()
    wait_for(lambda: not left_of(run), 5, f"every process of the run to end ({left_of(run)})")
    wait_for(lambda: not listening(stack_ports), 5, f"no listener on the run's ports {sorted(stack_ports)}")


@pytest.mark.integration
def test_the_next_run_removes_what_a_killed_harness_and_its_watchdog_left(tmp_path: Path) -> None:
    require_components("nginx")
    run_dir = tmp_path / "killed" / "reset"
    harness = _start("nginx", tmp_path / "killed")
    try:
        events = _wait_mid_run(harness, run_dir)
        below = descendants(harness.pid)
        (watchdog,) = [p for p in below if is_watchdog(p) and p.parent == harness.pid]
        run = [p for p in below if p != watchdog]
        stack_ports = ports(events)
        os.kill(watchdog.pid, signal.SIGKILL)  # first, so that it cannot act when the harness dies
        harness.send_signal(signal.SIGKILL)
        harness.wait(timeout=10)
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait()
    workers = [p for p in run if p.parent != harness.pid]
    wait_for(lambda: left_of(run) == left_of(workers), 5, "the harness's own children to die with it")
    assert left_of(workers), "with its watchdog killed too, nginx's workers outlive the harness"

    messages: list[str] = []
    runtime = LocalRuntime(log=messages.append)
    try:
        runtime.up(load_scenario(SCENARIO), tmp_path / "next" / "reset")
        assert left_of(run) == [], "the next run removed what the killed one left"
        assert not listening(stack_ports)
        assert any(f"killed harness pid {harness.pid}" in m and str(run_dir) in m for m in messages), messages
    finally:
        runtime.down()
