"""The supervisor's backoff, its restarts of real (tiny) processes, and memory-size parsing."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from harness.errors import FaultError, StackError
from harness.memsize import MemorySize, parse_memory_size
from harness.processes import ProcessGroup
from harness.supervisor import BackoffPolicy, Supervisor


def test_backoff_doubles_up_to_its_cap() -> None:
    policy = BackoffPolicy(initial=0.5, factor=2.0, maximum=3.0)
    assert [policy.delay(n) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert BackoffPolicy(initial=1.0, factor=1.0, maximum=10.0).delay(7) == 1.0


@pytest.mark.parametrize(("text", "size"), [
    ("64Mi", 64 * 1024**2), ("128MB", 128_000_000), ("1Gi", 1024**3), ("1.5G", 1_500_000_000),
    ("200mb", 200_000_000), (" 32 Mi ", 32 * 1024**2), (50_000_000, 50_000_000), ("20000000", 20_000_000),
])
def test_memory_sizes(text: object, size: int) -> None:
    assert parse_memory_size(text) == size
    assert TypeAdapter(MemorySize).validate_python(text) == size


@pytest.mark.parametrize("text", ["64 bananas", "Mi", "-5Mi", "", True, 1.5, "1Mi", "64Xi"])
def test_bad_memory_sizes_are_rejected(text: object) -> None:
    with pytest.raises((ValueError, ValidationError)):
        TypeAdapter(MemorySize).validate_python(text)


def wait_for(check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.01)
    raise AssertionError(f"not true after {timeout}s")


def test_supervisor_restarts_a_killed_process_after_its_backoff(tmp_path: Path) -> None:
    group = ProcessGroup(tmp_path)
    start = lambda port: group.start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"])  # noqa: E731
    events: list[tuple[str, dict[str, Any]]] = []
    supervisor = Supervisor()
    policy = BackoffPolicy(initial=0.3, factor=2.0, maximum=5.0)
    supervisor.add("s[0]", start(1), start, lambda port: True, policy, port=1)
    supervisor.watch(lambda type, **fields: events.append((type, fields)))
    try:
        first = supervisor.pid("s[0]")
        supervisor.send("s[0]", signal.SIGKILL)
        wait_for(lambda: any(t == "process.ready" for t, _ in events), timeout=5.0)
        second = supervisor.pid("s[0]")
        assert second is not None and second != first
        kinds = [t for t, _ in events]
        assert kinds == ["process.exited", "process.restarted", "process.ready"]
        exited, restarted = events[0][1], events[1][1]
        assert exited["signal"] == "SIGKILL" and exited["status"] == -9 and exited["oom"] is False
        assert exited["restart_in_s"] == 0.3 and restarted["attempt"] == 1 and restarted["backoff_s"] >= 0.3

        third_kill = supervisor.send("s[0]", signal.SIGKILL)  # a second crash in a row waits twice as long
        wait_for(lambda: [t for t, _ in events].count("process.ready") == 2, timeout=5.0)
        assert third_kill == second
        assert events[3][1]["restart_in_s"] == 0.6 and events[4][1]["attempt"] == 2

        pid = supervisor.restart("s[0]", port=2)  # graceful restart: at once, no backoff
        assert pid == supervisor.pid("s[0]") and pid not in (first, second)
        assert events[6][0] == "process.exited" and events[6][1]["cause"] == "restart"
        assert events[7][0] == "process.restarted" and events[7][1]["backoff_s"] == 0.0
        assert events[7][1]["port"] == 2 and supervisor.home_port("s[0]") == 1
    finally:
        supervisor.stop()
        group.stop_all()


def test_signals_to_a_dead_replica_are_fault_errors(tmp_path: Path) -> None:
    group = ProcessGroup(tmp_path)
    start = lambda port: group.start("quick", [sys.executable, "-c", "pass"])  # noqa: E731
    supervisor = Supervisor()
    supervisor.add("q[0]", start(1), start, lambda port: True, BackoffPolicy(initial=60.0), port=1)
    events: list[str] = []
    supervisor.watch(lambda type, **fields: events.append(type))
    try:
        wait_for(lambda: supervisor.pid("q[0]") is None, timeout=5.0)  # exited, waiting 60s for its restart
        assert events == ["process.exited"]
        with pytest.raises(FaultError, match="not running"):
            supervisor.send("q[0]", signal.SIGSTOP)
        with pytest.raises(FaultError, match="not a supervised process"):
            supervisor.send("nope[0]", signal.SIGSTOP)
    finally:
        supervisor.stop()
        group.stop_all()


def test_a_restart_that_cannot_start_is_journalled_and_the_watch_goes_on(tmp_path: Path) -> None:
    group = ProcessGroup(tmp_path)
    quick = group.start("quick", [sys.executable, "-c", "pass"])

    def start(port: int) -> Any:  # as processes.start does when the replica's memory cgroup is gone
        raise StackError("cannot start q[0]: it could not join its memory cgroup /sys/fs/cgroup/memory/chaosgate/x")

    sleeper = group.start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"])
    supervisor = Supervisor()
    supervisor.add("q[0]", quick, start, lambda port: True, BackoffPolicy(initial=0.05), port=1)
    supervisor.add("s[0]", sleeper, lambda port: sleeper, lambda port: True, BackoffPolicy(initial=0.05), port=2)
    events: list[tuple[str, dict[str, Any]]] = []
    supervisor.watch(lambda type, **fields: events.append((type, fields)))
    try:
        wait_for(lambda: any(t == "warning" for t, _ in events), timeout=5.0)
        assert [t for t, _ in events] == ["process.exited", "warning"]
        assert "q[0] could not be restarted: cannot start q[0]" in events[1][1]["message"]
        assert supervisor.pid("q[0]") is None
        with pytest.raises(FaultError, match="not running"):
            supervisor.send("q[0]", signal.SIGTERM)
        supervisor.send("s[0]", signal.SIGKILL)  # the watch goes on for the others
        wait_for(lambda: [t for t, _ in events].count("process.exited") == 2, timeout=5.0)
    finally:
        supervisor.stop()
        group.stop_all()
