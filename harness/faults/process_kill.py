"""Kill a replica's process with SIGKILL: the crash. The supervisor restarts it after its backoff."""

from __future__ import annotations

import signal
from typing import ClassVar, Literal

from harness.faults.base import Fault, FaultContext

PROCESS_CONTROL = "process_control"  # harness.runtimes.base.PROCESS_CONTROL (no import cycle)


class ProcessKill(Fault):
    """SIGKILL at the fault's start; the window (``for``) is the time expectations look at. The
    replica comes back when its supervisor restarts it (upstream ``restart`` backoff), whatever the
    window: clearing does nothing."""

    kind: Literal["process_kill"]
    exclusive: ClassVar[bool] = True
    needs: ClassVar[frozenset[str]] = frozenset({PROCESS_CONTROL})
    fake_only: ClassVar[str | None] = "a process chaosgate owns (it kills it, and restarts it)"

    def inject(self, ctx: FaultContext, replica: str) -> None:
        ctx.processes().send(replica, signal.SIGKILL)

    def clear(self, ctx: FaultContext, replica: str) -> None:
        pass  # a killed process cannot be un-killed: the supervisor brings it back
