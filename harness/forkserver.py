"""The harness's side of the fork server (fakes/forkserver.py): fake replicas forked, not exec'd.

``ForkServer`` starts ``python -m fakes.forkserver`` with one end of a socket pair, asks it for one
replica at a time and adopts each: the replica's first parent exits at once, so the kernel hands the
replica to the nearest child subreaper among its ancestors, which this module makes the harness
(PR_SET_CHILD_SUBREAPER). The harness then waits for it with ``waitpid`` like for any child, and
``AdoptedProcess`` gives it the shape of ``subprocess.Popen`` that ProcessGroup and the supervisor use.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from harness.errors import StackError
from harness.processes import Child, ProcessGroup

_PR_SET_CHILD_SUBREAPER = 36
POLL_S = 0.005


def become_subreaper() -> None:
    """Make this process adopt its descendants' orphans (the fork server's replicas)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise StackError(f"cannot become a child subreaper: {os.strerror(ctypes.get_errno())}")


class AdoptedProcess:
    """A process this one did not fork but adopted: its pid, and its exit status once it has one
    (``returncode`` as Popen's: the exit code, or minus the signal that killed it)."""

    def __init__(self, pid: int, argv: list[str]) -> None:
        self._pid = pid
        self._argv = argv
        self._returncode: int | None = None
        self._lock = threading.Lock()  # the supervisor's thread and teardown may both wait for it

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def returncode(self) -> int | None:
        return self._returncode

    def poll(self) -> int | None:
        with self._lock:
            if self._returncode is None:
                try:
                    pid, status = os.waitpid(self._pid, os.WNOHANG)
                except ChildProcessError:  # not ours (never adopted): it is gone, its status unknown
                    self._returncode = 255
                else:
                    if pid == self._pid:
                        self._returncode = os.waitstatus_to_exitcode(status)
            return self._returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(self._argv, timeout or 0.0)
            time.sleep(POLL_S)
        return code


class ForkServer:
    """One ``fakes.forkserver`` process of a stack, which has imported ``modules``; ``start`` forks a replica."""

    def __init__(self, processes: ProcessGroup, modules: list[str], timeout: float) -> None:
        become_subreaper()
        self._processes = processes
        self._timeout = timeout
        ours, theirs = socket.socketpair()
        try:
            self.child = processes.start("forkserver", [sys.executable, "-m", "fakes.forkserver",
                                                        "--fd", str(theirs.fileno()), *modules],
                                         pass_fds=(theirs.fileno(),))
        finally:
            theirs.close()
        ours.settimeout(timeout)  # the first answer comes once the fakes are imported
        self._socket = ours
        self._answers = ours.makefile("rb")
        self._lock = threading.Lock()  # the supervisor restarts replicas from its own thread

    def start(self, name: str, module: str, args: list[str], cgroup_procs: Path | None = None) -> Child:
        """Fork the replica ``name`` running ``module``'s ``main(args)``, with its output in the group's log
        for ``name`` (appended to) and, with ``cgroup_procs``, in that memory cgroup."""
        log = self._processes.log_of(name)
        request = {"name": name, "module": module, "args": args, "log": str(log),
                   "cgroup_procs": str(cgroup_procs) if cgroup_procs is not None else None}
        with self._lock:
            try:
                self._socket.sendall(json.dumps(request).encode() + b"\n")
                line = self._answers.readline()
            except OSError as exc:
                raise StackError(f"cannot start {name}: the fork server did not answer ({exc}); "
                                 f"its log: {self.child.log}\n{self.child.tail()}") from None
        if not line:
            raise StackError(f"cannot start {name}: the fork server exited (status {self.child.process.poll()}); "
                             f"its log: {self.child.log}\n{self.child.tail()}")
        answer = json.loads(line)
        if "error" in answer:
            raise StackError(f"cannot start {name}: {answer['error']}")
        return self._processes.adopt(name, AdoptedProcess(int(answer["pid"]), [module, *args]), log)

    def close(self) -> None:
        """Let the fork server end (the replicas it started live on, until their group stops them)."""
        self._answers.close()
        self._socket.close()
