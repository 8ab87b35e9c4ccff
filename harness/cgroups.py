"""Real memory limits for local replicas: one cgroup v1 memory cgroup per replica.

``/sys/fs/cgroup/memory/chaosgate/<run>/<replica>`` gets ``memory.limit_in_bytes`` (and
``memory.memsw.limit_in_bytes`` when the kernel accounts swap, so the replica cannot swap
its way out); the replica's process is placed in it before it runs the fake, and the
kernel's OOM killer ends it when it grows past the limit. ``oom_kills()`` reads the
kernel's own counter (``memory.oom_control``'s ``oom_kill``), which is how an exit is
told to be an OOM kill. A machine that refuses any of this gets a StackError that says so.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from harness.errors import StackError

MEMORY_ROOT = Path(os.environ.get("CHAOSGATE_CGROUP_MEMORY_ROOT", "/sys/fs/cgroup/memory"))


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


class MemoryCgroup:
    """One replica's memory cgroup; ``create`` makes it, ``remove`` deletes it (idempotent)."""

    def __init__(self, run: str, replica: str, limit_bytes: int, root: Path = MEMORY_ROOT) -> None:
        self.root = root
        self.path = root / "chaosgate" / _safe(run) / _safe(replica)
        self.replica = replica
        self.limit_bytes = limit_bytes

    @property
    def procs_file(self) -> Path:
        return self.path / "cgroup.procs"

    def create(self) -> None:
        if not (self.root / "memory.limit_in_bytes").exists():
            raise StackError(f"{self.replica}: memory_limit needs a cgroup v1 memory controller at {self.root}, "
                             "and this machine has none (set CHAOSGATE_CGROUP_MEMORY_ROOT if it is mounted elsewhere)")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            (self.path / "memory.limit_in_bytes").write_text(str(self.limit_bytes))
            if (self.path / "memory.memsw.limit_in_bytes").exists():
                (self.path / "memory.memsw.limit_in_bytes").write_text(str(self.limit_bytes))
        except OSError as exc:
            raise StackError(f"{self.replica}: cannot create the memory cgroup {self.path} for memory_limit "
                             f"({exc.strerror}; creating cgroups needs root and a writable cgroup hierarchy)") from exc

    def oom_kills(self) -> int:
        """The kernel's count of OOM kills in this cgroup (0 if unreadable)."""
        try:
            for line in (self.path / "memory.oom_control").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def failcnt(self) -> int:
        try:
            return int((self.path / "memory.failcnt").read_text())
        except (OSError, ValueError):
            return 0

    def remove(self, timeout: float = 3.0) -> None:
        """Delete the cgroup (and its run folder when empty) once its processes are gone."""
        deadline = time.monotonic() + timeout
        while self.path.exists():
            try:
                self.path.rmdir()
            except OSError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.05)
        for folder in (self.path.parent, self.path.parent.parent):  # the run's, then chaosgate's when empty
            try:
                folder.rmdir()
            except OSError:
                return
