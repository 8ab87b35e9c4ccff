"""The replica comes back on another port: the seed's "incorrect upstream definition" (wrong port).

At the fault's start the replica is restarted (SIGTERM, then at once) listening on a fresh
port, while its Toxiproxy proxy — what the gateway's configuration points at — still dials
the old one: the gateway's connections are accepted by the proxy, whose dial is refused, so
its checks fail until the fault ends and the replica moves back to the port the definition
names (the same as correcting the definition). The replica itself stays healthy throughout.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from harness.faults.base import Fault, FaultContext
from harness.processes import free_port

PROCESS_CONTROL = "process_control"


class PortChange(Fault):
    """Restart on a new port at the start; back on its own port at the end."""

    kind: Literal["port_change"]
    exclusive: ClassVar[bool] = True
    needs: ClassVar[frozenset[str]] = frozenset({PROCESS_CONTROL})
    fake_only: ClassVar[str | None] = "a process chaosgate owns (it restarts it on another port)"

    def inject(self, ctx: FaultContext, replica: str) -> None:
        processes = ctx.processes()
        port = free_port()
        while port == processes.home_port(replica):
            port = free_port()
        processes.restart(replica, port)

    def clear(self, ctx: FaultContext, replica: str) -> None:
        processes = ctx.processes()
        processes.restart(replica, processes.home_port(replica))
