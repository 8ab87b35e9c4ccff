"""Restart a replica gracefully (SIGTERM, wait, start again at once on the same port): a rollout."""

from __future__ import annotations

from typing import ClassVar, Literal

from harness.faults.base import Fault, FaultContext

PROCESS_CONTROL = "process_control"


class ProcessRestart(Fault):
    """SIGTERM at the fault's start and an immediate start (no backoff); clearing does nothing."""

    kind: Literal["process_restart"]
    exclusive: ClassVar[bool] = True
    needs: ClassVar[frozenset[str]] = frozenset({PROCESS_CONTROL})
    fake_only: ClassVar[str | None] = "a process chaosgate owns (it restarts it)"

    def inject(self, ctx: FaultContext, replica: str) -> None:
        ctx.processes().restart(replica)

    def clear(self, ctx: FaultContext, replica: str) -> None:
        pass
