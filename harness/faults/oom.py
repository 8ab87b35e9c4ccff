"""Make the kernel's OOM killer end a replica: memory growth inside its memory limit.

The fault switches the fake's ``memory_growth`` mode on (through its control API) in a
replica whose pool sets ``memory_limit``; the replica allocates and touches memory until
the kernel kills it (SIGKILL, the memory cgroup's ``oom_kill`` counter goes up: v1's ``memory.oom_control``,
v2's ``memory.events``, read through ``harness.cgroups``). The
supervisor journals the exit with ``oom: true`` and restarts the replica after its backoff;
the restarted process starts without the mode. A separate kind from ``llm_fault``'s
``memory_growth`` because it needs what that mode does not: a memory limit, and a runtime
that enforces it.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from harness.errors import FaultError
from harness.faults.base import Fault, FaultContext, _control

MEMORY_LIMIT = "memory_limit"  # harness.runtimes.base.MEMORY_LIMIT
PROCESS_CONTROL = "process_control"


class Oom(Fault):
    """``{kind: oom, target: 'chat[0]', at, for, mb_per_s}``: grows until the memory limit kills it."""

    kind: Literal["oom"]
    exclusive: ClassVar[bool] = True
    pool_kinds: ClassVar[frozenset[str] | None] = frozenset({"openai", "anthropic"})  # their memory_growth
    needs: ClassVar[frozenset[str]] = frozenset({MEMORY_LIMIT, PROCESS_CONTROL})
    needs_memory_limit: ClassVar[bool] = True
    fake_only: ClassVar[str | None] = "a process chaosgate owns, in a memory cgroup chaosgate sets"
    mb_per_s: float = Field(default=200.0, gt=0, le=4096, description="Growth rate in MiB per second.")

    def inject(self, ctx: FaultContext, replica: str) -> None:
        # max_mb at the fake's ceiling: the limit, not the mode, is what stops the growth.
        _control(ctx, replica, "PUT", {"mode": "memory_growth", "mb_per_s": self.mb_per_s, "max_mb": 65536})

    def clear(self, ctx: FaultContext, replica: str) -> None:
        try:
            _control(ctx, replica, "DELETE", None)
        except FaultError:
            if ctx.processes().pid(replica) is not None:
                raise  # it is running and would not stop growing: that is an error
            # killed and not restarted yet: the new process starts without the mode
