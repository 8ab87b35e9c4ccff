"""Resource pressure a fake puts on itself: memory growth and CPU saturation.

Both run as one asyncio task on the server's event loop, started when the mode is set and
cancelled when it is cleared (the memory is released then).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

MIB = 1024 * 1024
TICK_S = 0.1


@dataclass
class Pressure:
    """The running pressure task, if any, and the memory it holds."""

    held: list[bytearray] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    @property
    def held_mb(self) -> float:
        return sum(len(block) for block in self.held) / MIB

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None
        self.held.clear()  # large blocks are mmap'ed: freeing them returns the memory to the OS

    def start_memory_growth(self, mb_per_s: float, max_mb: float) -> None:
        self.stop()
        self.task = asyncio.get_running_loop().create_task(self._grow(mb_per_s, max_mb))

    def start_cpu_burn(self, duty: float, period: float) -> None:
        self.stop()
        self.task = asyncio.get_running_loop().create_task(self._burn(duty, period))

    async def _grow(self, mb_per_s: float, max_mb: float) -> None:
        started = time.monotonic()
        while self.held_mb < max_mb:
            target = min(max_mb, mb_per_s * (time.monotonic() - started + TICK_S))
            missing = int((target - self.held_mb) * MIB)
            if missing > 0:
                # Filled with a non-zero byte, so every page is really touched (resident).
                self.held.append(bytearray(b"\xa5") * missing)
            await asyncio.sleep(TICK_S)

    @staticmethod
    async def _burn(duty: float, period: float) -> None:
        while True:
            spin_until = time.monotonic() + duty * period
            while time.monotonic() < spin_until:  # busy: the loop serves nothing meanwhile
                pass
            await asyncio.sleep((1.0 - duty) * period)
