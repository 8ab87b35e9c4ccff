"""Blackhole the replica: data is swallowed, and the connection is closed after ``timeout`` (never if 0)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from harness.durations import Duration
from harness.faults.base import ToxicFault, ms


class Timeout(ToxicFault):
    """Toxiproxy ``timeout``: nothing gets through; the connection hangs or closes late."""

    kind: Literal["timeout"]
    toxic_type = "timeout"
    timeout: Duration = Field(default=0.0, description="Close the connection after this long; 0 keeps it open forever.")

    def attributes(self) -> dict[str, Any]:
        return {"timeout": ms(self.timeout)}
