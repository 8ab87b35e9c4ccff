"""Limit the replica's throughput."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from harness.faults.base import ToxicFault


class Bandwidth(ToxicFault):
    """Toxiproxy ``bandwidth``: at most ``rate_kbps`` KB/s pass through."""

    kind: Literal["bandwidth"]
    toxic_type = "bandwidth"
    rate_kbps: int = Field(ge=0, description="Kilobytes per second allowed through.")

    def attributes(self) -> dict[str, Any]:
        return {"rate": self.rate_kbps}
