"""Delay the closing of the replica's connections."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from harness.durations import Duration
from harness.faults.base import ToxicFault, ms


class SlowClose(ToxicFault):
    """Toxiproxy ``slow_close``: the TCP close is held back by ``delay``."""

    kind: Literal["slow_close"]
    toxic_type = "slow_close"
    delay: Duration = Field(description="How long the close is held back.")

    def attributes(self) -> dict[str, Any]:
        return {"delay": ms(self.delay)}
