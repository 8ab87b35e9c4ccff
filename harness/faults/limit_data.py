"""Close the replica's connections after a number of bytes (truncates responses and streams)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from harness.faults.base import ToxicFault


class LimitData(ToxicFault):
    """Toxiproxy ``limit_data``: each connection is closed once ``bytes`` have passed."""

    kind: Literal["limit_data"]
    toxic_type = "limit_data"
    bytes: int = Field(ge=0, description="Bytes allowed through before the connection is closed.")

    def attributes(self) -> dict[str, Any]:
        return {"bytes": self.bytes}
