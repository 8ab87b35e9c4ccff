"""Restart dead replicas as an orchestrator would: after an exponential backoff, on the same port.

The supervisor watches every local replica process. When one exits (killed by a fault, by
the kernel's OOM killer, or on its own) it records ``process.exited`` (exit status, signal,
and whether the kernel's OOM counter of its memory cgroup went up), waits its backoff,
starts it again with the same command line (same port, so the Toxiproxy proxy and the
gateway's configuration stay valid), records ``process.restarted``, and ``process.ready``
once the restarted replica answers on its health and control endpoints. Backoff doubles
(``factor``) with each restart in a row, up to ``max_backoff``; a replica that stayed up for
``max_backoff`` starts again from ``initial_backoff``, like Kubernetes' CrashLoopBackOff.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from harness.cgroups import MemoryCgroup
from harness.errors import ChaosgateError, FaultError
from harness.processes import Child

POLL_S = 0.02
EventSink = Callable[..., Any]  # JournalWriter.write: (type, **fields)


@dataclass(frozen=True)
class BackoffPolicy:
    """``initial * factor**n`` seconds before the (n+1)-th restart in a row, capped at ``maximum``."""

    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 30.0

    def delay(self, restarts_in_a_row: int) -> float:
        return min(self.maximum, self.initial * self.factor ** restarts_in_a_row)


@dataclass
class _Supervised:
    name: str
    child: Child
    start: Callable[[int], Child]   # starts the replica listening on a port
    ready: Callable[[int], bool]    # whether the replica listening on a port answers
    policy: BackoffPolicy
    cgroup: MemoryCgroup | None
    home_port: int                  # the port the gateway's proxy dials
    port: int                       # the port it listens on now (differs during a port change)
    state: Literal["running", "waiting", "starting", "failed"] = "running"  # failed: could not be restarted
    in_a_row: int = 0
    ready_since: float = 0.0
    restart_at: float = 0.0
    exited_at: float = 0.0
    oom_seen: int = 0


class Supervisor:
    """Watches replica processes and restarts the dead ones; also the local runtime's process control."""

    def __init__(self) -> None:
        self._replicas: dict[str, _Supervised] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._record: EventSink = lambda *args, **kwargs: None

    def add(self, name: str, child: Child, start: Callable[[int], Child], ready: Callable[[int], bool],
            policy: BackoffPolicy, port: int, cgroup: MemoryCgroup | None = None) -> None:
        """Supervise ``child``, the replica ``name`` listening on ``port``."""
        self._replicas[name] = _Supervised(name, child, start, ready, policy, cgroup, port, port,
                                           ready_since=time.monotonic(),
                                           oom_seen=cgroup.oom_kills() if cgroup else 0)

    # -- process control (see harness.runtimes.base.ProcessControl) ------------------
    def pid(self, replica: str) -> int | None:
        """The replica's current process id; None while it is dead and waiting for its restart."""
        with self._lock:
            entry = self._get(replica)
            return None if entry.state in ("waiting", "failed") else entry.child.process.pid

    def send(self, replica: str, sig: int) -> int:
        """Send ``sig`` to the replica's process group; returns the pid it went to."""
        with self._lock:
            entry = self._get(replica)
            if entry.state in ("waiting", "failed") or entry.child.process.poll() is not None:
                raise FaultError(f"{replica} is not running (it is waiting for its restart), "
                                 f"so it cannot get {signal.Signals(sig).name}")
            pid = entry.child.process.pid
        try:
            os.killpg(pid, sig)
        except ProcessLookupError as exc:
            raise FaultError(f"{replica} (pid {pid}) exited before it got {signal.Signals(sig).name}") from exc
        return pid

    def restart(self, replica: str, port: int | None = None, grace: float = 5.0) -> int:
        """SIGTERM the replica, wait for it to exit, start it again at once (no backoff) on ``port``
        (default: where it listens now); the new pid. Later restarts after a crash keep that port."""
        with self._lock:
            entry = self._get(replica)
            old = entry.child.process
            try:
                os.killpg(old.pid, signal.SIGTERM)
                old.wait(timeout=grace)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:  # did not stop in time: make sure
                os.killpg(old.pid, signal.SIGKILL)
                old.wait()
            self._record("process.exited", replica=replica, pid=old.pid, status=old.returncode,
                         signal=signal_name(old.returncode), oom=False, cause="restart", port=entry.port)
            entry.exited_at = time.monotonic()
            entry.in_a_row = 0  # a deliberate restart is not a crash: it does not lengthen the next backoff
            if port is not None:
                entry.port = port
            self._start(entry, backoff=0.0)
            return entry.child.process.pid

    def home_port(self, replica: str) -> int:
        """The port the replica was started on (its proxy dials it)."""
        return self._get(replica).home_port

    def _get(self, replica: str) -> _Supervised:
        try:
            return self._replicas[replica]
        except KeyError:
            raise FaultError(f"{replica} is not a supervised process on this runtime") from None

    # -- the watch loop --------------------------------------------------------------
    def watch(self, record: EventSink) -> None:
        """Start supervising; events go to ``record`` (the journal's write)."""
        self._record = record
        self._thread = threading.Thread(target=self._loop, name="supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop restarting; thaw any frozen replica so that teardown's SIGTERM reaches it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        for entry in self._replicas.values():
            try:
                os.killpg(entry.child.process.pid, signal.SIGCONT)
            except (ProcessLookupError, PermissionError):
                pass

    def _loop(self) -> None:
        while not self._stop.is_set():
            for entry in list(self._replicas.values()):
                with self._lock:
                    self._step(entry)
            self._stop.wait(POLL_S)

    def _step(self, entry: _Supervised) -> None:
        now = time.monotonic()
        if entry.state in ("running", "starting") and entry.child.process.poll() is not None:
            self._exited(entry, now)
        elif entry.state == "waiting" and now >= entry.restart_at:
            try:
                self._start(entry, backoff=entry.restart_at - entry.exited_at)
            except ChaosgateError as exc:  # e.g. its memory cgroup is gone: said in the journal, not a traceback
                entry.state = "failed"
                self._record("warning", message=f"supervisor: {entry.name} could not be restarted: {exc}")
        elif entry.state == "starting" and entry.ready(entry.port):
            entry.state, entry.ready_since = "running", time.monotonic()
            self._record("process.ready", replica=entry.name, pid=entry.child.process.pid, port=entry.port,
                         after_exit_s=round(time.monotonic() - entry.exited_at, 3))

    def _exited(self, entry: _Supervised, now: float) -> None:
        status = entry.child.process.returncode
        kills = entry.cgroup.oom_kills() if entry.cgroup else 0
        oom = kills > entry.oom_seen
        entry.oom_seen = kills
        if entry.state == "running" and now - entry.ready_since >= entry.policy.maximum:
            entry.in_a_row = 0  # it had been up long enough: the backoff starts over
        delay = entry.policy.delay(entry.in_a_row)
        entry.state, entry.exited_at, entry.restart_at = "waiting", now, now + delay
        self._record("process.exited", replica=entry.name, pid=entry.child.process.pid, status=status,
                     signal=signal_name(status), oom=oom, oom_kills=kills,
                     memory_failcnt=entry.cgroup.failcnt() if entry.cgroup else None,
                     restart_in_s=round(delay, 3))

    def _start(self, entry: _Supervised, backoff: float) -> None:
        entry.in_a_row += 1
        entry.child = entry.start(entry.port)
        entry.state = "starting"
        self._record("process.restarted", replica=entry.name, pid=entry.child.process.pid, port=entry.port,
                     attempt=entry.in_a_row, backoff_s=round(backoff, 3))


def signal_name(status: int | None) -> str | None:
    """``SIGKILL`` for a process killed by signal 9 (Popen's returncode -9), None for a normal exit."""
    if status is None or status >= 0:
        return None
    try:
        return signal.Signals(-status).name
    except ValueError:
        return f"signal {-status}"
