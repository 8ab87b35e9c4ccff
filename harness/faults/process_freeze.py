"""Freeze a replica's process (SIGSTOP) for the fault's duration, then SIGCONT: the hung upstream.

The kernel still accepts TCP connections into the frozen process's listen backlog, so the
gateway's connects succeed and its health checks time out instead of being refused.
"""

from __future__ import annotations

import signal
from typing import ClassVar, Literal

from harness.errors import FaultError
from harness.faults.base import Fault, FaultContext

PROCESS_CONTROL = "process_control"


class ProcessFreeze(Fault):
    """SIGSTOP to the replica's process group at the start, SIGCONT at the end."""

    kind: Literal["process_freeze"]
    exclusive: ClassVar[bool] = True
    needs: ClassVar[frozenset[str]] = frozenset({PROCESS_CONTROL})
    fake_only: ClassVar[str | None] = "a process chaosgate owns (it stops it with SIGSTOP)"

    def inject(self, ctx: FaultContext, replica: str) -> None:
        ctx.processes().send(replica, signal.SIGSTOP)

    def clear(self, ctx: FaultContext, replica: str) -> None:
        try:
            ctx.processes().send(replica, signal.SIGCONT)
        except FaultError:
            pass  # not running (already dead and restarting): nothing is frozen
