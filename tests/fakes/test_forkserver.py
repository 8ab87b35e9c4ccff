"""The fork server: replicas forked from one process that imported the fakes, each still a process of its
own that the harness adopted (its parent, its exit status, its session, its log, its name)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.errors import StackError
from harness.forkserver import ForkServer
from harness.processes import ProcessGroup, free_port
from tests.waiting import wait_until


@pytest.fixture()
def group(tmp_path: Path) -> Iterator[ProcessGroup]:
    processes = ProcessGroup(tmp_path / "logs")
    yield processes
    processes.stop_all()


def llm_args(name: str, port: int) -> list[str]:
    return ["--name", name, "--host", "127.0.0.1", "--port", str(port), "--seed", "1"]


def answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command: state, parent, process group, session, ..."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2:].split()


def test_a_forked_replica_is_adopted_and_answers_in_its_own_session(group: ProcessGroup) -> None:
    forks = ForkServer(group, ["fakes.llm"], timeout=20.0)
    ports = [free_port(), free_port()]
    replicas = [forks.start(f"chat[{i}]", "fakes.llm", llm_args(f"chat[{i}]", port)) for i, port in enumerate(ports)]
    for port in ports:
        wait_until(lambda: answers(port), 10.0, f"the replica on {port} to answer")
    reply = httpx.post(f"http://127.0.0.1:{ports[1]}/v1/chat/completions", timeout=5.0,
                       json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert reply.headers["x-chaosgate-replica"] == "chat[1]"
    for replica in replicas:
        pid = replica.process.pid
        assert pid != forks.child.process.pid
        _, parent, process_group, session = stat(pid)[:4]
        assert int(parent) == os.getpid(), "adopted by the harness, not the fork server's"
        assert int(process_group) == int(session) == pid, "a session and group of its own"
        assert Path(f"/proc/{pid}/comm").read_text().strip() == replica.name
        assert replica.log == group.log_dir / f"chat_{replicas.index(replica)}_.log"
    group.stop_all()  # SIGTERM: uvicorn shuts down, then raises the signal again (as a python -m fakes.llm does)
    assert [r.process.returncode for r in replicas] == [-signal.SIGTERM, -signal.SIGTERM]


def test_the_harness_reads_a_killed_replicas_signal_and_a_failed_ones_code(group: ProcessGroup) -> None:
    forks = ForkServer(group, ["fakes.llm"], timeout=20.0)
    port = free_port()
    killed = forks.start("chat[0]", "fakes.llm", llm_args("chat[0]", port))
    wait_until(lambda: answers(port), 10.0, "the replica to answer")
    assert killed.process.poll() is None
    os.kill(killed.process.pid, signal.SIGKILL)
    assert killed.process.wait(timeout=5.0) == -signal.SIGKILL
    # the same port again: the fake cannot bind it while something listens there, and exits 2 saying so
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        busy = forks.start("chat[1]", "fakes.llm", llm_args("chat[1]", port))
        assert busy.process.wait(timeout=10.0) == 2
    assert f"cannot bind 127.0.0.1:{port}" in busy.log.read_text()
    bad = forks.start("chat[2]", "fakes.llm", [*llm_args("chat[2]", free_port()), "--no-such-option"])
    assert bad.process.wait(timeout=10.0) == 2
    assert "unrecognized arguments: --no-such-option" in bad.log.read_text()


def test_a_module_it_does_not_run_and_a_dead_server_are_clear_errors(group: ProcessGroup) -> None:
    forks = ForkServer(group, ["fakes.llm"], timeout=20.0)
    with pytest.raises(StackError, match=r"cannot start x: os is not a fake this server runs \(fakes.anthropic, fakes.dns, fakes.llm"):
        forks.start("x", "os", [])
    os.kill(forks.child.process.pid, signal.SIGKILL)
    forks.child.process.wait(timeout=5.0)
    with pytest.raises(StackError, match=r"cannot start chat\[0\]: the fork server (exited|did not answer)"):
        forks.start("chat[0]", "fakes.llm", llm_args("chat[0]", free_port()))


HARNESS = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from harness.forkserver import ForkServer
    from harness.processes import ProcessGroup
    group = ProcessGroup(Path(sys.argv[1]))
    forks = ForkServer(group, ["fakes.llm"], timeout=20.0)
    child = forks.start("chat[0]", "fakes.llm", ["--name", "chat[0]", "--port", sys.argv[2], "--seed", "1"])
    print(child.process.pid, flush=True)
    time.sleep(60)
""")


def test_a_replica_dies_with_its_harness(tmp_path: Path) -> None:
    """A harness killed with SIGKILL takes its forked replicas with it (PR_SET_PDEATHSIG once adopted)."""
    port = free_port()
    harness = subprocess.Popen([sys.executable, "-c", HARNESS, str(tmp_path / "logs"), str(port)],
                               stdout=subprocess.PIPE, cwd=Path(__file__).resolve().parents[2])
    try:
        assert harness.stdout is not None
        replica = int(harness.stdout.readline())
        wait_until(lambda: answers(port), 10.0, "the replica to answer")
    finally:
        harness.kill()
        harness.wait()

    def gone() -> bool:
        try:
            return stat(replica)[0] == "Z"  # a zombie, until init reaps it
        except FileNotFoundError:
            return True
    wait_until(gone, 5.0, f"replica {replica} to die with its harness")
    assert not answers(port)
