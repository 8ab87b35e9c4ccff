"""free_port across processes: a lock file per handed-out port (harness/processes.py), held RESERVE_S."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from harness import processes

ROOT = Path(__file__).resolve().parents[2]
CALLS = 300  # per process: without the locks, two random draws of 300 from ~22,000 ports meet with p > 0.98


def _hand_out(tmp: Path, calls: int) -> subprocess.Popen[str]:
    code = f"from harness.processes import free_port\nprint(*(free_port() for _ in range({calls})))"
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "TMPDIR": str(tmp)},
                            stdout=subprocess.PIPE, text=True)


def test_two_processes_never_get_the_same_port(tmp_path: Path) -> None:
    children = [_hand_out(tmp_path, CALLS), _hand_out(tmp_path, CALLS)]
    outputs = [child.communicate(timeout=120)[0] for child in children]
    assert [child.returncode for child in children] == [0, 0]
    first, second = ({int(port) for port in output.split()} for output in outputs)
    assert len(first) == len(second) == CALLS, "one process handed out a port twice"
    assert first & second == set(), f"both processes handed out {sorted(first & second)[:10]}"
    locks = {int(entry.name) for entry in (tmp_path / f"chaosgate-ports-{os.getuid()}").iterdir()
             if entry.name.isdigit()}
    assert first | second <= locks


def _only_candidate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> int:
    """Make one free port the only candidate, in a lock directory of this test's own."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    monkeypatch.setattr(processes, "_LISTEN_PORTS", (port, port + 1))
    monkeypatch.setattr(processes, "_ephemeral_range", lambda: (1, 2))
    monkeypatch.setattr(processes, "_handed_out", set())
    return port


def test_a_stale_lock_is_reclaimed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    port = _only_candidate(monkeypatch, tmp_path)
    lock = processes.port_lock_dir() / str(port)
    lock.write_text("12345\n")
    old = time.time() - processes.RESERVE_S - 1
    os.utime(lock, (old, old))
    assert processes.free_port() == port
    assert lock.read_text() == f"{os.getpid()}\n"
    assert time.time() - lock.stat().st_mtime < processes.RESERVE_S


def test_a_fresh_lock_of_another_process_keeps_its_port(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    port = _only_candidate(monkeypatch, tmp_path)
    lock = processes.port_lock_dir() / str(port)
    lock.write_text("12345\n")
    young = time.time() - processes.RESERVE_S + 30
    os.utime(lock, (young, young))
    assert processes.free_port() != port  # falls back to a kernel-picked port, locked too
    assert lock.read_text() == "12345\n"


def test_release_old_removes_only_locks_older_than_the_reserve(tmp_path: Path) -> None:
    now = time.time()
    for name, age in (("20001", processes.RESERVE_S + 5), ("20002", processes.RESERVE_S - 5), (".lock", 1e6)):
        (tmp_path / name).write_text("")
        os.utime(tmp_path / name, (now - age, now - age))
    processes._release_old(tmp_path, now)
    assert sorted(entry.name for entry in tmp_path.iterdir()) == [".lock", "20002"]
