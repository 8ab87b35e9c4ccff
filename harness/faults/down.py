"""Take the replica's proxy down: connections are refused and open ones dropped."""

from __future__ import annotations

from typing import ClassVar, Literal

from harness.faults.base import Fault, FaultContext


class Down(Fault):
    """The Toxiproxy proxy is disabled for the fault's duration."""

    exclusive: ClassVar[bool] = True  # re-enabling the proxy ends every down fault on it
    kind: Literal["down"]

    def inject(self, ctx: FaultContext, replica: str) -> None:
        ctx.toxiproxy.set_enabled(ctx.proxy_name(replica), False)

    def clear(self, ctx: FaultContext, replica: str) -> None:
        ctx.toxiproxy.set_enabled(ctx.proxy_name(replica), True)
