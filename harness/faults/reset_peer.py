"""Reset every connection to the replica with a TCP RST."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from harness.durations import Duration
from harness.faults.base import ToxicFault, ms


class ResetPeer(ToxicFault):
    """Toxiproxy ``reset_peer``: connections are reset at once, or after ``timeout``."""

    kind: Literal["reset_peer"]
    toxic_type = "reset_peer"
    timeout: Duration = Field(default=0.0, description="Reset after this long; 0 resets at once.")

    def attributes(self) -> dict[str, Any]:
        return {"timeout": ms(self.timeout)}
