"""The fault seam: every fault kind is a pydantic model that can inject and clear itself.

A fault in a scenario names a ``target`` (``chat[0]``, ``chat[*]`` or ``chat``), a start
``at`` and a duration ``for``. The harness resolves the target to replicas and calls
``inject`` once per replica when the fault starts and ``clear`` when it ends (and at
teardown, whatever happened).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from harness.durations import Duration
from harness.targets import Target
from harness.toxiproxy import ToxiproxyControl


class FaultContext(Protocol):
    """What a fault may touch in a running stack."""

    @property
    def toxiproxy(self) -> ToxiproxyControl:
        """The Toxiproxy server that sits between the gateway and every replica."""

    def proxy_name(self, replica: str) -> str:
        """The Toxiproxy proxy in front of ``replica`` (e.g. ``chat[0]``)."""


class Fault(BaseModel):
    """Fields every fault has; subclasses add ``kind`` and their own parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    exclusive: ClassVar[bool] = False  # True: two faults of this kind cannot overlap on one replica

    kind: str
    name: str | None = Field(default=None, description="Names the fault in reports; default '<kind>@<target>'.")
    target: Target = Field(description="'pool[i]' for one replica, 'pool[*]' or 'pool' for all of them.")
    at: Duration = Field(description="When the fault starts, from the start of the load.")
    duration: Duration = Field(alias="for", gt=0, description="How long the fault lasts.")

    @property
    def label(self) -> str:
        """The name reports use for this fault."""
        return self.name or f"{self.kind}@{self.target}"

    def inject(self, ctx: FaultContext, replica: str) -> None:
        """Start the fault on one replica."""
        raise NotImplementedError

    def clear(self, ctx: FaultContext, replica: str) -> None:
        """End the fault on one replica; must succeed when the fault is not active."""
        raise NotImplementedError


Direction = Literal["downstream", "upstream", "both"]


class ToxicFault(Fault):
    """A fault made by one Toxiproxy toxic on the proxy in front of a replica."""

    toxic_type: ClassVar[str]
    direction: Direction = Field(
        default="downstream",
        description="Which bytes the toxic acts on: 'downstream' (replica to gateway), 'upstream' (gateway to replica) or 'both'.",
    )
    toxicity: float = Field(default=1.0, ge=0.0, le=1.0,
                            description="Share of connections affected (Toxiproxy draws once per connection).")

    def attributes(self) -> dict[str, Any]:
        """The toxic's attributes in Toxiproxy's units."""
        raise NotImplementedError

    def _streams(self) -> list[str]:
        return ["downstream", "upstream"] if self.direction == "both" else [self.direction]

    def toxic_name(self, stream: str) -> str:
        """Unique per fault (labels are unique), so overlapping faults never share a toxic."""
        return re.sub(r"[^A-Za-z0-9_.-]", "_", f"chaosgate_{self.label}_{stream}")

    def inject(self, ctx: FaultContext, replica: str) -> None:
        for stream in self._streams():
            ctx.toxiproxy.add_toxic(ctx.proxy_name(replica), self.toxic_name(stream),
                                    self.toxic_type, stream, self.toxicity, self.attributes())

    def clear(self, ctx: FaultContext, replica: str) -> None:
        for stream in self._streams():
            ctx.toxiproxy.remove_toxic(ctx.proxy_name(replica), self.toxic_name(stream))


def ms(seconds: float) -> int:
    """Seconds to whole milliseconds, as Toxiproxy wants them."""
    return round(seconds * 1000)
