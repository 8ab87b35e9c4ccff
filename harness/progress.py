"""Progress output on stderr: one refreshing line on a terminal, a line every few seconds in CI."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TextIO


@dataclass(frozen=True)
class Status:
    """A snapshot of a running scenario."""

    scenario: str
    phase: str
    elapsed: float
    total: float
    requests: int
    error_rate: float | None
    health: dict[str, bool]


class Progress:
    """Prints stages, warnings and running status for people watching a run."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False, every: float = 5.0) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = self.stream.isatty()
        self.every = every
        self._last = 0.0
        self._line_open = False

    def stage(self, message: str) -> None:
        self._print(message)

    def warn(self, message: str) -> None:
        self._print(f"warning: {message}")

    def status(self, status: Status) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        if not self.tty and now - self._last < self.every:
            return
        self._last = now
        errors = "-" if status.error_rate is None else f"{status.error_rate:.1%}"
        health = " ".join(f"{name}{'+' if ok else '-'}" for name, ok in status.health.items())
        line = (f"[{status.scenario}] {status.phase:<9} {status.elapsed:5.1f}/{status.total:.0f}s  "
                f"requests {status.requests:<6} errors(5s) {errors:<6} health {health}")
        if self.tty:
            self.stream.write("\r\x1b[K" + line)
            self._line_open = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def _print(self, message: str) -> None:
        if self.quiet:
            return
        if self._line_open:
            self.stream.write("\n")
            self._line_open = False
        self.stream.write(message + "\n")
        self.stream.flush()
