"""Nothing the local runtime starts outlives the harness, even a harness killed with SIGKILL.

Every component (Toxiproxy, the fakes, the gateway, the load processes) starts in a session of its
own, and what it forks stays in that session: nginx's workers, LiteLLM's children. The kernel kills
a component's first process when the harness dies (PR_SET_PDEATHSIG in harness/processes.py), but
not what that process forked: an nginx worker went on listening on the gateway's port. So:

* the harness records each session it starts (its id, the start time of its first process, a name
  and the run's folder) in a state file of its own, ``<state dir>/<host>_<pid>_<start>.json``,
  named after its owner token (harness/ownership.py, as the docker runtime labels its containers);
* a watchdog, ``python -m harness.leftovers FILE``, started beside the first session in a session of
  its own, blocks on a pipe that only the harness holds. When the harness dies, however it dies, the
  pipe reaches end of file and the watchdog SIGKILLs every process still in a recorded session,
  then removes the file;
* a watchdog killed together with its harness leaves the file behind: the next local run (``run``
  or ``up``) reaps every state file whose owner is gone before it starts, and says what it removed.

Sessions, not process groups or environment variables: a process may change its group, and nginx
writes its process title over its environment; only ``setsid`` leaves a session, and no component
of the stack does. A session whose first process still runs but started at another time is another
session (a reused pid) and is spared; so are members that started before the recorded session.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from harness.errors import StackError
from harness.ownership import owner_alive, owner_token, start_time

KILL_ROUNDS = 20  # a session whose processes fork while being killed is scanned again, up to this often


def state_dir() -> Path:
    """Where harness processes record their sessions: $CHAOSGATE_STATE_DIR, else a folder of this user's in /tmp."""
    if override := os.environ.get("CHAOSGATE_STATE_DIR"):
        return Path(override)
    return Path(tempfile.gettempdir()) / f"chaosgate-{os.getuid()}" / "sessions"


@dataclass(frozen=True)
class Process:
    """One line of /proc/<pid>/stat, the fields the reaper needs."""

    pid: int
    parent: int
    session: int
    start: int
    state: str
    command: str


def processes() -> list[Process]:
    """Every process on the machine (zombies included; they hold no port and cannot be killed)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        command, _, rest = stat[stat.index("(") + 1:].rpartition(")")
        fields = rest.split()
        found.append(Process(int(entry.name), int(fields[1]), int(fields[3]), int(fields[19]), fields[0], command))
    return found


def session_members(session: int, since: int) -> list[Process]:
    """The live (non-zombie) processes of ``session`` that started at or after ``since`` (clock ticks)."""
    return [p for p in processes() if p.session == session and p.start >= since and p.state != "Z"]


def kill_session(session: int, start: int) -> list[Process]:
    """SIGKILL every process of the session whose first process started at ``start``; what was killed.

    Nothing, when a process with the session's id runs but started at another time (the id was reused)."""
    leader_start = start_time(session)
    if leader_start is not None and int(leader_start) != start:
        return []
    killed: dict[int, Process] = {}
    for _ in range(KILL_ROUNDS):
        members = [p for p in session_members(session, start) if p.pid != os.getpid()]
        if not members:
            break
        for member in members:
            try:
                os.kill(member.pid, signal.SIGKILL)
                killed.setdefault(member.pid, member)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.01)
    return list(killed.values())


@dataclass(frozen=True)
class Reaped:
    """What the reaping of one dead harness's state file removed."""

    owner: str
    runs: list[str]
    killed: list[Process]

    def describe(self) -> str:
        pid = self.owner.rsplit(":", 2)[-2] if self.owner.count(":") >= 2 else self.owner
        what = ", ".join(f"{p.command} (pid {p.pid})" for p in self.killed) or "no process still running"
        return f"removed what the killed harness pid {pid} left ({', '.join(self.runs) or 'no run folder'}): {what}"


def _read_state(file: Path) -> dict[str, object] | None:
    try:
        data = json.loads(file.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # damaged (it is only ever replaced whole): no owner, so it is left alone
    return data if isinstance(data, dict) else {}


def reap(file: Path) -> Reaped | None:
    """Kill every process of the sessions recorded in ``file`` and remove it (None: no such file)."""
    data = _read_state(file)
    if data is None:
        return None
    sessions = data.get("sessions")
    killed: list[Process] = []
    runs: set[str] = set()
    for sid, entry in (sessions.items() if isinstance(sessions, dict) else []):
        if not (isinstance(entry, dict) and str(sid).isdigit() and isinstance(entry.get("start"), int)):
            continue
        killed += kill_session(int(sid), entry["start"])
        runs.add(str(entry.get("run", "")))
    file.unlink(missing_ok=True)
    file.with_suffix(".tmp").unlink(missing_ok=True)  # an update the harness did not finish
    return Reaped(str(data.get("owner", file.stem)), sorted(r for r in runs if r), killed)


def reap_leftovers(directory: Path | None = None) -> list[Reaped]:
    """Reap the state file of every harness that is gone (its watchdog was killed with it); runs of
    live harnesses are never touched."""
    directory = directory or state_dir()
    reaped = []
    for file in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        data = _read_state(file)
        if data is None or owner_alive(str(data.get("owner", ""))):
            continue
        if (result := reap(file)) is not None:
            reaped.append(result)
    return reaped


class SessionRegistry:
    """This harness process's sessions: its state file, kept current, and its watchdog."""

    def __init__(self, directory: Path | None = None) -> None:
        self._directory = directory
        self._owner = owner_token()
        self._sessions: dict[int, dict[str, object]] = {}
        self._lock = threading.Lock()
        self._watchdog: subprocess.Popen[bytes] | None = None

    @property
    def file(self) -> Path:
        directory = self._directory or state_dir()
        return directory / f"{self._owner.replace(':', '_').replace('/', '_')}.json"

    @property
    def watchdog(self) -> subprocess.Popen[bytes] | None:
        return self._watchdog

    def add(self, pid: int, name: str, run: Path | str) -> None:
        """Record the session of ``pid`` (a process just started with start_new_session)."""
        start = start_time(pid)
        with self._lock:
            self._sessions[pid] = {"start": int(start) if start is not None else 0, "name": name, "run": str(run)}
            self._write()
            self._ensure_watchdog()

    def release(self, pid: int) -> None:
        """The first process of ``pid``'s session was stopped and waited for: kill what is left of the
        session (a child that left its process group), and forget it."""
        with self._lock:
            entry = self._sessions.pop(pid, None)
            if entry is not None:
                start = entry["start"]
                kill_session(pid, start if isinstance(start, int) else 0)
                self._write()

    def _write(self) -> None:
        file = self.file
        temporary = file.with_suffix(".tmp")  # written under the lock; os.replace makes the update atomic
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps({"owner": self._owner, "sessions": self._sessions}))
            os.replace(temporary, file)
        except OSError as exc:
            raise StackError(f"cannot record the run's processes in {file} ({exc.strerror or exc}): "
                             "set CHAOSGATE_STATE_DIR to a writable folder") from exc

    def _ensure_watchdog(self) -> None:
        if self._watchdog is not None and self._watchdog.poll() is None:
            return
        # Its stdin is a pipe whose writing end only this process holds (Popen closes other descriptors in
        # every child): end of file there means this process is gone. Its own session: a signal to the
        # harness's process group (Ctrl-C in a terminal, a CI runner's kill) does not reach it.
        self._watchdog = subprocess.Popen([sys.executable, "-m", "harness.leftovers", str(self.file)],
                                          stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, start_new_session=True)


_registry: SessionRegistry | None = None


def registry() -> SessionRegistry:
    """This process's session registry (created with the first session)."""
    global _registry
    if _registry is None:
        _registry = SessionRegistry()
    return _registry


def track(pid: int, name: str, run: Path | str) -> None:
    """Record the session a component was just started in, so that nothing of it outlives this process."""
    registry().add(pid, name, run)


def release(pid: int) -> None:
    """The component was stopped and waited for: kill what is left of its session, and forget it."""
    if _registry is not None:
        _registry.release(pid)


def watch(file: Path) -> None:
    """The watchdog: wait until the harness is gone (end of file on stdin), then reap its sessions."""
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    while sys.stdin.buffer.read(65536):
        pass
    reap(file)


if __name__ == "__main__":
    watch(Path(sys.argv[1]))
