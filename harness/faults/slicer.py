"""Cut the replica's data into small, delayed pieces (stresses SSE and JSON parsers)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from harness.durations import Duration
from harness.faults.base import ToxicFault


class Slicer(ToxicFault):
    """Toxiproxy ``slicer``: data is split into ``average_size`` ± ``size_variation`` byte pieces."""

    kind: Literal["slicer"]
    toxic_type = "slicer"
    average_size: int = Field(ge=1, description="Average size of a piece, in bytes.")
    size_variation: int = Field(default=0, ge=0, description="Variation of the size, in bytes.")
    delay: Duration = Field(default=0.0, description="Pause between pieces.")

    def attributes(self) -> dict[str, Any]:
        # Toxiproxy takes the slicer's delay in microseconds.
        return {"average_size": self.average_size, "size_variation": self.size_variation,
                "delay": round(self.delay * 1_000_000)}
