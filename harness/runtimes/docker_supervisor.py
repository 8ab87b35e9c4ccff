"""Process control for the docker runtime: the harness as the orchestrator of the replicas' containers.

Each replica is one container whose only process (PID 1) is the fake. Faults act on the
container through the engine, never from inside it (a signal sent to PID 1 from inside its
namespace is ignored unless the fake handles it):

    SIGKILL (process_kill)       docker kill: the engine's SIGKILL from outside the namespace
    SIGSTOP / SIGCONT            docker pause / unpause: the cgroup freezer (process_freeze)
    restart (process_restart)    docker stop (SIGTERM, then SIGKILL after the grace), docker start
    restart on another port      the container is recreated with the fake on that port (port_change)

The supervisor watches the run's containers through the engine's event stream (``die``,
``oom``). When a replica's container dies it journals ``process.exited`` with the exit
status as the local runtime reports it (``-N`` for a process ended by signal N: Docker's
exit code 128+N), ``oom`` from the container's ``State.OOMKilled`` (the kernel's OOM killer
in the container's memory cgroup) and the raw ``exit_code``; after the upstream's
``restart:`` backoff it starts the same container again (``process.restarted``), and
journals ``process.ready`` once the fake answers on its published health and control ports.
Docker's own restart policy is not used: its backoff (100 ms, doubling) cannot be set, and
the scenario's backoff is part of what the expectations judge, on both runtimes alike.

Host ports are fixed when a replica's container is created, so a restarted container keeps
the URLs the journal recorded (Docker picks a new random port at every start otherwise).
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from harness.errors import FaultError
from harness.runtimes.docker_engine import LABEL_RUN, connect, file_safe
from harness.supervisor import BackoffPolicy

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

POLL_S = 0.02
EventSink = Callable[..., Any]  # JournalWriter.write: (type, **fields)


@dataclass
class _Replica:
    name: str
    container: Container
    ready: Callable[[int], bool]             # whether the replica published on a host port answers
    create: Callable[[int], Container]       # a new container of the replica listening on a host port
    policy: BackoffPolicy
    home_port: int                           # the host port of its data port at creation (its proxy's target)
    spare_port: int                          # the host port it is published on after a port change
    port: int                                # where the host reaches it now (differs during a port change)
    state: Literal["running", "waiting", "starting"] = "running"
    pid: int | None = None
    in_a_row: int = 0
    ready_since: float = 0.0
    restart_at: float = 0.0
    exited_at: float = 0.0
    oom_events: int = 0                      # the engine's oom events for it, in this run
    oom_events_at_start: int = 0
    oom_flag_at_start: bool = False          # State.OOMKilled when it last started (the engine never resets it)
    ignore_before_ns: int = 0                # die events up to here were the harness's own (restarts)
    generations: list[str] = field(default_factory=list)  # ids of containers replaced by a port change


def exit_status(exit_code: int | None) -> tuple[int | None, str | None]:
    """Docker's exit code as the local runtime records a process's end: ``(-N, 'SIGN')`` for a
    process ended by signal N (exit code 128+N), else ``(code, None)``."""
    if exit_code is None or exit_code <= 128 or exit_code > 128 + 64:
        return exit_code, None
    number = exit_code - 128
    try:
        return -number, signal.Signals(number).name
    except ValueError:
        return -number, f"signal {number}"


class ContainerSupervisor:
    """Watches the replicas' containers, restarts the dead ones with backoff; the docker runtime's process control."""

    def __init__(self, client: DockerClient, run_id: str, log_dir: Path | None = None) -> None:
        self._client = client
        self._run_id = run_id
        self._log_dir = log_dir
        self._replicas: dict[str, _Replica] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._stream: Any = None
        self._events_client: DockerClient | None = None  # the event stream's own connection
        self._record: EventSink = lambda *args, **kwargs: None

    def add(self, name: str, container: Container, ready: Callable[[int], bool], create: Callable[[int], Container],
            policy: BackoffPolicy, port: int, spare_port: int) -> None:
        """Supervise ``container``, the replica ``name`` published on the host's ``port`` (and, after a port
        change, on ``spare_port``)."""
        self._replicas[name] = _Replica(name, container, ready, create, policy, port, spare_port, port,
                                        pid=_pid(container), ready_since=time.monotonic())

    def supervises(self, replica: str) -> bool:
        return replica in self._replicas

    def container(self, replica: str) -> Container:
        """The replica's current container (a port change replaces it)."""
        return self._get(replica).container

    # -- process control (see harness.runtimes.base.ProcessControl) ------------------
    def pid(self, replica: str) -> int | None:
        """The host pid of the fake in the replica's container; None while it waits for its restart."""
        with self._lock:
            entry = self._get(replica)
            return None if entry.state == "waiting" else entry.pid

    def send(self, replica: str, sig: int) -> int:
        """SIGSTOP: pause the container (cgroup freezer); SIGCONT: unpause it; any other signal:
        ``docker kill --signal``. The pid it went to; FaultError if the replica is not running."""
        from docker.errors import APIError, NotFound

        name = signal.Signals(sig).name
        with self._lock:
            entry = self._get(replica)
            if entry.state == "waiting" or entry.pid is None:
                raise FaultError(f"{replica} is not running (it is waiting for its restart), so it cannot get {name}")
            container, pid = entry.container, entry.pid
            try:
                if sig == signal.SIGSTOP:
                    container.pause()
                elif sig == signal.SIGCONT:
                    container.reload()
                    if container.status == "paused":
                        container.unpause()
                else:
                    container.kill(signal=name)
            except (APIError, NotFound) as exc:
                raise FaultError(f"{replica} (container {container.name}) could not get {name}: "
                                 f"{getattr(exc, 'explanation', None) or exc}") from exc
            return pid

    def restart(self, replica: str, port: int | None = None, grace: float = 5.0) -> int:
        """``docker stop`` (SIGTERM, SIGKILL after ``grace``) and start again at once (no backoff). With a
        ``port`` other than its home port, the fake's container is recreated listening on its spare port (a
        container's published ports are fixed when it is created, so the runtime picks the port it moves to:
        ``process.restarted`` says which); with its home port, recreated back there. The new pid."""
        with self._lock:
            entry = self._get(replica)
            container = entry.container
            container.reload()
            if container.status == "paused":
                container.unpause()
            old_pid = entry.pid
            container.stop(timeout=int(max(1, grace)))
            entry.ignore_before_ns = time.time_ns()  # its die event is this stop, not a crash
            container.reload()
            status, sig = exit_status((container.attrs.get("State") or {}).get("ExitCode"))
            self._record("process.exited", replica=replica, pid=old_pid, status=status, signal=sig, oom=False,
                         cause="restart", port=entry.port, exit_code=(container.attrs.get("State") or {}).get("ExitCode"),
                         container=container.short_id)
            entry.exited_at = time.monotonic()
            entry.in_a_row = 0  # a deliberate restart is not a crash: it does not lengthen the next backoff
            target = None if port is None else entry.home_port if port == entry.home_port else entry.spare_port
            if target is not None and target != entry.port:
                self._replace(entry, target)
            self._start(entry, backoff=0.0)
            assert entry.pid is not None
            return entry.pid

    def home_port(self, replica: str) -> int:
        """The host port the replica was published on at first (its proxy dials the container's data port)."""
        return self._get(replica).home_port

    def _get(self, replica: str) -> _Replica:
        try:
            return self._replicas[replica]
        except KeyError:
            raise FaultError(f"{replica} is not a supervised container on this runtime") from None

    def _replace(self, entry: _Replica, port: int) -> None:
        """Remove the stopped container (its output saved first) and create the replica anew on ``port``."""
        old = entry.container
        if self._log_dir is not None:
            self._log_dir.mkdir(parents=True, exist_ok=True)
            entry.generations.append(old.id or "")
            (self._log_dir / f"{file_safe(entry.name)}.{len(entry.generations)}.log").write_bytes(old.logs())
        old.remove(force=True)
        entry.container = entry.create(port)
        entry.port = port

    # -- the watch loop --------------------------------------------------------------
    def watch(self, record: EventSink) -> None:
        """Start supervising; events go to ``record`` (the journal's write)."""
        self._record = record
        events_client = self._events_client = connect()
        self._stream = events_client.events(decode=True, filters={
            "type": "container", "label": f"{LABEL_RUN}={self._run_id}", "event": ["die", "oom"]})
        self._threads = [threading.Thread(target=self._listen, name="docker-events", daemon=True),
                         threading.Thread(target=self._loop, name="docker-supervisor", daemon=True)]
        for thread in self._threads:
            thread.start()
        with self._lock:  # a replica that died before the stream started
            for entry in self._replicas.values():
                entry.container.reload()
                if entry.container.status in ("exited", "dead"):
                    self._events.put({"Action": "die", "id": entry.container.id, "timeNano": time.time_ns()})

    def stop(self) -> None:
        """Stop restarting; thaw any paused replica so that teardown sees it as it was."""
        self._stop.set()
        if self._stream is not None:
            try:
                self._stream.close()
            except Exception:  # noqa: BLE001 - closing a stream the engine may have ended already
                pass
        for thread in self._threads:
            thread.join(timeout=5.0)
        if self._events_client is not None:
            self._events_client.close()
        for entry in self._replicas.values():
            try:
                entry.container.reload()
                if entry.container.status == "paused":
                    entry.container.unpause()
            except Exception:  # noqa: BLE001 - teardown removes it anyway
                pass

    def _listen(self) -> None:
        try:
            for event in self._stream:
                self._events.put(event)
        except Exception:  # noqa: BLE001 - the stream ends with an error when stop() closes it
            pass

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                while True:
                    self._on_event(self._events.get_nowait())
            except queue.Empty:
                pass
            for entry in list(self._replicas.values()):
                with self._lock:
                    self._step(entry)
            self._stop.wait(POLL_S)

    def _on_event(self, event: dict[str, Any]) -> None:
        with self._lock:
            entry = next((e for e in self._replicas.values() if e.container.id == event.get("id")), None)
            if entry is None:
                return
            if event.get("Action") == "oom":
                entry.oom_events += 1
            elif (event.get("Action") == "die" and entry.state != "waiting"
                  and int(event.get("timeNano") or 0) > entry.ignore_before_ns):
                self._exited(entry, time.monotonic())

    def _step(self, entry: _Replica) -> None:
        now = time.monotonic()
        if entry.state == "waiting" and now >= entry.restart_at:
            self._start(entry, backoff=entry.restart_at - entry.exited_at)
        elif entry.state == "starting" and entry.ready(entry.port):
            entry.state, entry.ready_since = "running", time.monotonic()
            self._record("process.ready", replica=entry.name, pid=entry.pid, port=entry.port,
                         after_exit_s=round(time.monotonic() - entry.exited_at, 3))

    def _exited(self, entry: _Replica, now: float) -> None:
        entry.container.reload()
        state = entry.container.attrs.get("State") or {}
        status, sig = exit_status(state.get("ExitCode"))
        # The engine keeps State.OOMKilled from an earlier death across restarts: an oom event since this start,
        # or the flag newly set, says the kernel's OOM killer ended this one.
        oom = entry.oom_events > entry.oom_events_at_start or (bool(state.get("OOMKilled")) and not entry.oom_flag_at_start)
        if entry.state == "running" and now - entry.ready_since >= entry.policy.maximum:
            entry.in_a_row = 0  # it had been up long enough: the backoff starts over
        delay = entry.policy.delay(entry.in_a_row)
        pid, entry.pid = entry.pid, None
        entry.state, entry.exited_at, entry.restart_at = "waiting", now, now + delay
        self._record("process.exited", replica=entry.name, pid=pid, status=status, signal=sig, oom=oom,
                     oom_kills=entry.oom_events, memory_failcnt=None, restart_in_s=round(delay, 3),
                     exit_code=state.get("ExitCode"), container=entry.container.short_id)

    def _start(self, entry: _Replica, backoff: float) -> None:
        entry.in_a_row += 1
        if entry.container.status != "running":
            entry.container.start()
        entry.pid = _pid(entry.container)
        entry.oom_events_at_start = entry.oom_events
        entry.oom_flag_at_start = bool((entry.container.attrs.get("State") or {}).get("OOMKilled"))
        entry.state = "starting"
        self._record("process.restarted", replica=entry.name, pid=entry.pid, port=entry.port,
                     attempt=entry.in_a_row, backoff_s=round(backoff, 3))


def _pid(container: Container) -> int | None:
    container.reload()
    pid = (container.attrs.get("State") or {}).get("Pid")
    return int(pid) if pid else None
