"""Child processes of a stack: started in a session of their own, ended whatever happens.

Children get SIGKILL from the kernel if the harness itself dies (PR_SET_PDEATHSIG); what they
fork (nginx's workers) is killed by the harness's watchdog, which knows their sessions
(harness/leftovers.py), so a harness killed with SIGKILL leaves nothing behind either.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import random
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx

from harness import leftovers, loopback
from harness.errors import PortInUse, StackError, StartupTimeout

_PR_SET_PDEATHSIG = 1
READY_POLL_S = 0.01  # how often wait_ready asks (a loopback call through the shared client: about 0.2 ms)


def answers(url: str, timeout: float = 0.5) -> bool:
    """Whether ``url`` answers 200 now: the readiness probe for ``ProcessGroup.wait_ready``."""
    try:
        return loopback.client().get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (runs between fork and exec)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


_LISTEN_PORTS = (10000, 32000)  # where listeners go when the kernel's ephemeral range allows it
_handed_out: set[int] = set()
RESERVE_S = 120.0  # a port handed out stays reserved, across processes, this long (its component has bound it by then)


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def port_lock_dir() -> Path:
    """Where every chaosgate process of this user notes the ports it handed out: one file per port."""
    path = Path(tempfile.gettempdir()) / f"chaosgate-ports-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


@contextmanager
def _ports_locked(directory: Path) -> Iterator[None]:
    """Hold the directory's flock while a process reclaims or claims: two processes never judge
    the same stale lock at once (the flock goes with its holder, even one killed)."""
    fd = os.open(directory / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _release_old(directory: Path, now: float) -> None:
    """Remove the locks handed out more than RESERVE_S ago: their ports are anyone's again."""
    for entry in os.scandir(directory):
        if not entry.name.isdigit():
            continue
        try:
            if now - entry.stat().st_mtime > RESERVE_S:
                os.unlink(entry.path)
        except FileNotFoundError:
            pass


def _claim(directory: Path, port: int) -> bool:
    """Create the port's lock file (O_CREAT|O_EXCL): False if another process holds it."""
    try:
        fd = os.open(directory / str(port), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as lock:
        lock.write(f"{os.getpid()}\n")
    return True


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback TCP port that is free now, for a component to listen on a moment later.

    Not from the kernel's ephemeral range: there, the source port of any outgoing connection
    (load, health checks, proxies) could take it between this check and the component's bind.
    Nor one this process handed out before, so components started together never collide; nor
    one another chaosgate process of this user handed out in the last RESERVE_S seconds (a lock
    file per port in ``port_lock_dir()``), so runs side by side and pytest-xdist workers never
    collide either.
    """
    low, high = _ephemeral_range()
    candidates = [p for p in range(*_LISTEN_PORTS) if not low <= p <= high and p not in _handed_out]
    directory = port_lock_dir()
    with _ports_locked(directory):
        _release_old(directory, time.time())
        for port in random.sample(candidates, k=min(200, len(candidates))):
            if _bindable(port) and _claim(directory, port):
                _handed_out.add(port)
                return port
        for _ in range(50):  # no room outside the range: let the kernel pick, still one process's alone
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            if port not in _handed_out and _claim(directory, port):
                _handed_out.add(port)
                return port
    raise StackError("no free loopback port: every candidate is taken or reserved by another chaosgate process")


def check_port_free(port: int, what: str) -> None:
    """Raise PortInUse if something already listens on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise PortInUse(f"port {port} for {what} is already in use on 127.0.0.1") from exc


class ProcessHandle(Protocol):
    """What the harness needs of a process it started: ``subprocess.Popen`` has it, and so has a replica
    the fork server started (harness/forkserver.py)."""

    @property
    def pid(self) -> int: ...
    @property
    def returncode(self) -> int | None: ...
    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...


@dataclass
class Child:
    """One running process and where its output goes."""

    name: str
    process: ProcessHandle
    log: Path

    def tail(self, lines: int = 5) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class ProcessGroup:
    """Every process a stack started; ``stop_all`` ends them in reverse order."""

    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)  # added to every child's environment
    children: list[Child] = field(default_factory=list)

    def log_of(self, name: str) -> Path:
        """Where the output of the process ``name`` goes."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return self.log_dir / f"{_file_safe(name)}.log"

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None,
              cgroup_procs: Path | None = None, pass_fds: tuple[int, ...] = ()) -> Child:
        """Start ``argv`` with its output in ``log_dir/<name>.log`` (appended to, so a restarted
        process keeps its predecessor's output); with ``cgroup_procs``, the process joins that
        cgroup before it runs ``argv``; ``pass_fds`` stay open in it."""
        log = self.log_of(name)

        def before_exec() -> None:
            die_with_parent()
            if cgroup_procs is not None:
                with open(cgroup_procs, "w") as procs:
                    procs.write(str(os.getpid()))

        with log.open("ab") as out:
            try:
                process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           env={**os.environ, **self.env, **(env or {})}, start_new_session=True,
                                           preexec_fn=before_exec, pass_fds=pass_fds)
            except OSError as exc:
                raise StackError(f"cannot start {name} ({argv[0]}): {exc.strerror}") from exc
            except subprocess.SubprocessError as exc:
                raise StackError(f"cannot start {name}: it could not join its memory cgroup {cgroup_procs}") from exc
        return self.adopt(name, process, log)

    def adopt(self, name: str, process: ProcessHandle, log: Path) -> Child:
        """Count ``process`` (started here, or forked for us) among the group's: stopped with it, and
        killed by the watchdog if the harness dies."""
        child = Child(name, process, log)
        self.children.append(child)  # first: a failure to record it below still leaves it to stop_all
        leftovers.track(process.pid, name, self.log_dir.parent)
        return child

    def wait_ready(self, child: Child, ready: Callable[[], bool], timeout: float) -> None:
        """Poll ``ready`` until it is true; fail early if the process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child.process.poll() is not None:
                raise StackError(f"{child.name} exited with status {child.process.returncode} while starting:\n"
                                 f"{child.tail()}")
            if ready():
                return
            time.sleep(READY_POLL_S)
        raise StartupTimeout(f"{child.name} was not ready after {timeout:g}s (log: {child.log})")

    def stop_all(self, grace: float = 3.0) -> None:
        """SIGTERM every process group, then SIGKILL what is left after ``grace`` seconds."""
        for child in reversed(self.children):
            _signal_group(child.process, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in reversed(self.children):
            try:
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(child.process, signal.SIGKILL)
                child.process.wait()
            leftovers.release(child.process.pid)
        self.children.clear()


def _signal_group(process: ProcessHandle, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _file_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
