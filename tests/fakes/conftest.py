"""Fixtures that run fake servers in-process: one uvicorn in a thread, serving the data port
and the control port (fakes.serving.PortRouter), both on free loopback ports."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from fakes.serving import FakeApps, PortRouter, server_config
from harness.processes import answers, free_port

START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Running:
    """Base URLs of a running fake: ``url`` for clients, ``control`` for its control API."""

    url: str
    control: str

    def set_fault(self, mode: dict[str, object]) -> None:
        response = httpx.put(f"{self.control}/fault", json=mode, timeout=5)
        assert response.status_code == 200, response.text

    def clear_fault(self) -> None:
        response = httpx.delete(f"{self.control}/fault", timeout=5)
        assert response.status_code == 200 and response.json() == {"mode": "none"}

    def stats(self) -> dict[str, object]:
        return dict(httpx.get(f"{self.control}/stats", timeout=5).json())


StartFake = Callable[[FakeApps], Running]


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
def start_fake() -> Iterator[StartFake]:
    """Start fakes on demand. The ports are bound here (port 0) and handed to uvicorn: no port race."""
    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(apps: FakeApps) -> Running:
        data, control = _listening_socket(), _listening_socket()
        control_port = control.getsockname()[1]
        server = uvicorn.Server(server_config(PortRouter(apps, control_port)))
        server.config.loop = "asyncio"  # a thread of the test process: no uvloop policy change
        thread = threading.Thread(target=server.run, kwargs={"sockets": [data, control]}, daemon=True)
        thread.start()
        running.append((server, thread))
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("fake server did not start")
            time.sleep(0.005)
        return Running(f"http://127.0.0.1:{data.getsockname()[1]}", f"http://127.0.0.1:{control_port}")

    yield start
    for server, _ in running:
        server.should_exit = True
    for server, thread in running:
        thread.join(timeout=START_TIMEOUT_S)
        assert not thread.is_alive(), "fake server thread did not stop"


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    pytest.fail(f"timed out after {timeout:g}s waiting for {what}")


ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class RunningProcess(Running):
    """A fake started as its own process with its command line."""

    pid: int

    def demand_seconds(self) -> float:
        """CPU time the process's threads have asked for so far: time on a CPU plus time waiting for one (each
        thread's schedstat). Unlike the CPU time it got, a busy machine does not shrink it: a thread that wants to
        run counts whether or not it got the CPU."""
        total_ns = 0
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            try:
                on_cpu, waiting, _ = (task / "schedstat").read_text().split()
            except (OSError, ValueError):
                continue  # a thread that ended meanwhile
            total_ns += int(on_cpu) + int(waiting)
        return total_ns / 1e9

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")


StartCli = Callable[..., RunningProcess]


def cpu_demand(fake: RunningProcess, window: float = 0.4) -> float:
    """The share of one CPU the fake asked for over ``window`` seconds (``demand_seconds``)."""
    demand, began = fake.demand_seconds(), time.monotonic()
    time.sleep(window)  # the measuring window itself
    return (fake.demand_seconds() - demand) / (time.monotonic() - began)


def _free_port() -> int:
    """A port for a fake started as a process: the harness's own choice (outside the ephemeral range, never
    handed out twice), so tests on several pytest-xdist workers do not race for one."""
    return free_port()


@pytest.fixture(scope="module")
def start_cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartCli]:
    """Start fakes as processes (``python -m <module> --name N --port P --control-port C ...``)."""
    children: list[subprocess.Popen[bytes]] = []
    logs = tmp_path_factory.mktemp("fake-logs")

    def start(module: str, name: str, *extra: str) -> RunningProcess:
        port, control_port = _free_port(), _free_port()
        with (logs / f"{len(children)}.log").open("wb") as log:
            child = subprocess.Popen([sys.executable, "-m", module, "--name", name, "--port", str(port),
                                      "--control-port", str(control_port), *extra],
                                     cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        children.append(child)
        running = RunningProcess(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{control_port}", child.pid)
        deadline = time.monotonic() + 20
        while not (answers(f"{running.url}/health", timeout=1) and answers(f"{running.control}/fault", timeout=1)):
            assert child.poll() is None, (logs / f"{len(children) - 1}.log").read_text()
            assert time.monotonic() < deadline, f"{module} did not start"
            time.sleep(0.05)
        return running

    yield start
    for child in children:
        child.terminate()
    for child in children:
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)
