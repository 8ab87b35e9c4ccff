"""Add delay (and jitter) to every chunk of data through the replica's proxy."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from harness.durations import Duration
from harness.faults.base import ToxicFault, ms


class Latency(ToxicFault):
    """Toxiproxy ``latency``: each chunk is delayed by ``latency`` ± ``jitter``."""

    kind: Literal["latency"]
    toxic_type = "latency"
    latency: Duration = Field(description="Delay added to each chunk of data.")
    jitter: Duration = Field(default=0.0, description="Random variation added to or taken from the delay.")

    def attributes(self) -> dict[str, Any]:
        return {"latency": ms(self.latency), "jitter": ms(self.jitter)}
