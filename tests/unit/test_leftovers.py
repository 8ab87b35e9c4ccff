"""Nothing a harness started outlives it: its watchdog kills every process of its sessions when it dies,
and the reaping of a dead harness's state file does the same for a watchdog killed with it (real, tiny
processes: a shell that forks a grandchild, as nginx's master forks its workers)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import leftovers
from harness.errors import StackError
from harness.leftovers import SessionRegistry, kill_session, reap_leftovers, session_members
from harness.ownership import owner_alive, owner_token, start_time
ROOT = Path(__file__).resolve().parents[2]
# A component that forks: the shell's background child is in the shell's session, not its child process.
FORKING = ["sh", "-c", "sleep 300 & exec sleep 300"]


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.02)
    raise AssertionError(f"not true after {timeout}s: {what}")


def alive(pid: int) -> bool:
    return any(p.pid == pid and p.state != "Z" for p in leftovers.processes())


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test started in sessions of their own; whatever is left of them is killed afterwards."""
    children: list[subprocess.Popen[bytes]] = []
    yield children
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait()
        kill_session(child.pid, 0)  # its session's first process is gone: what is left of it


def start_forking(started: list[subprocess.Popen[bytes]]) -> tuple[int, int]:
    """The shell's pid (its session) and its forked grandchild's."""
    child = subprocess.Popen(FORKING, start_new_session=True)
    started.append(child)
    members = wait_for(lambda: [p.pid for p in session_members(child.pid, 0) if p.pid != child.pid], 5,
                       "the grandchild to start")
    return child.pid, members[0]


def test_a_killed_harness_s_watchdog_kills_its_sessions_grandchildren_included(tmp_path: Path) -> None:
    # A harness (a child of this test) starts a forking component with the death signal, as
    # harness/processes.py does, and records its session; the test SIGKILLs the harness.
    script = textwrap.dedent(f"""
        import subprocess, sys, time
        from pathlib import Path
        from harness.leftovers import SessionRegistry
        from harness.processes import die_with_parent
        registry = SessionRegistry(Path({str(tmp_path)!r}))
        child = subprocess.Popen({FORKING!r}, start_new_session=True, preexec_fn=die_with_parent)
        registry.add(child.pid, "forking", "run")
        print(child.pid, registry.watchdog.pid, registry.file, flush=True)
        time.sleep(300)
    """)
    harness = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    session = "0"
    try:
        assert harness.stdout is not None
        session, watchdog, file = harness.stdout.readline().split()
        grandchild = wait_for(lambda: [p.pid for p in session_members(int(session), 0) if p.pid != int(session)], 5,
                              "the grandchild to start")[0]
        assert json.loads(Path(file).read_text())["sessions"][session]["name"] == "forking"
        harness.kill()
        harness.wait()
        wait_for(lambda: not alive(grandchild) and not alive(int(session)), 5, "the session to be killed")
        wait_for(lambda: not Path(file).exists() and not alive(int(watchdog)), 5, "the watchdog to finish")
    finally:
        harness.kill()
        harness.wait()
        if session != "0":  # the harness's child, a zombie or gone now: what is left of its session
            kill_session(int(session), 0)


def test_the_next_run_reaps_what_a_dead_harness_and_its_watchdog_left(tmp_path: Path,
                                                                       started: list[subprocess.Popen[bytes]]) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead_owner = f"{owner_token().rsplit(':', 2)[0]}:{gone.pid}:1"
    orphan, orphan_child = start_forking(started)
    spared, spared_child = start_forking(started)
    (tmp_path / "dead.json").write_text(json.dumps({"owner": dead_owner, "sessions": {
        str(orphan): {"start": int(start_time(orphan) or 0), "name": "nginx", "run": "/runs/killed"}}}))
    (tmp_path / "live.json").write_text(json.dumps({"owner": owner_token(), "sessions": {
        str(spared): {"start": int(start_time(spared) or 0), "name": "envoy", "run": "/runs/live"}}}))
    (tmp_path / "dead.tmp").write_text("{")  # an update the killed harness did not finish

    reaped = reap_leftovers(tmp_path)

    assert [r.owner for r in reaped] == [dead_owner]
    killed = reaped[0]
    assert {p.pid for p in killed.killed} == {orphan, orphan_child}
    assert "/runs/killed" in killed.describe() and f"harness pid {gone.pid}" in killed.describe()
    wait_for(lambda: not alive(orphan_child), 5, "the orphan's grandchild to be killed")
    assert alive(spared) and alive(spared_child), "the sessions of a live harness are never touched"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live.json"]


def test_a_reused_session_id_is_spared(started: list[subprocess.Popen[bytes]]) -> None:
    session, grandchild = start_forking(started)
    assert kill_session(session, int(start_time(session) or 0) + 1) == [], "another process started at another time"
    assert alive(session) and alive(grandchild)
    assert {p.pid for p in kill_session(session, int(start_time(session) or 0))} == {session, grandchild}


def test_release_kills_what_is_left_of_a_stopped_component_s_session(tmp_path: Path,
                                                                       started: list[subprocess.Popen[bytes]]) -> None:
    registry = SessionRegistry(tmp_path)
    session, grandchild = start_forking(started)
    registry.add(session, "forking", tmp_path)
    try:
        os.kill(session, signal.SIGTERM)  # the component stops; what it forked does not
        started[0].wait()
        assert alive(grandchild)
        registry.release(session)
        wait_for(lambda: not alive(grandchild), 5, "the grandchild to be killed")
        assert json.loads(registry.file.read_text())["sessions"] == {}
    finally:
        watchdog = registry.watchdog
        assert watchdog is not None and watchdog.stdin is not None
        watchdog.stdin.close()  # as when the harness exits: the watchdog removes the file and ends
        watchdog.wait(timeout=10)
    assert not registry.file.exists()


def test_a_zombie_owner_is_gone() -> None:
    zombie = subprocess.Popen(["true"])
    wait_for(lambda: any(p.pid == zombie.pid and p.state == "Z" for p in leftovers.processes()), 5, "a zombie")
    token = owner_token(zombie.pid)
    zombie.wait()
    assert owner_alive(owner_token()) and not owner_alive(token)


def test_a_state_folder_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    registry = SessionRegistry(tmp_path / "file" / "sessions")  # below a file: mkdir fails
    with pytest.raises(StackError, match="cannot record the run's processes in .*CHAOSGATE_STATE_DIR"):
        registry.add(os.getpid(), "x", tmp_path)
    assert registry.watchdog is None
