"""The one error tree of chaosgate.

    ChaosgateError            anything the CLI reports as one line, without a traceback
    ├── ScenarioError         a scenario file is unreadable or invalid (file, line, field)
    ├── PlanError             a valid scenario that cannot be scheduled (e.g. fault outlasts the load)
    ├── StackError            a component could not be started or reached
    │   ├── ComponentMissing  a binary the stack needs is not installed
    │   ├── PortInUse         a requested port is already bound
    │   └── StartupTimeout    a component did not become ready before its deadline
    ├── FaultError            injecting or clearing a fault failed
    ├── LoadError             the load could not be driven as the scenario asked (a distributed worker died)
    └── JournalError          a journal file is missing or unreadable

Exceptions from subprocesses, httpx, YAML and Toxiproxy are translated into these at the
seam where they happen (``raise StackError(...) from exc``).
"""

from __future__ import annotations

from dataclasses import dataclass


class ChaosgateError(Exception):
    """Base of every error the CLI reports as a single readable message."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a scenario file, located as precisely as we can."""

    file: str
    line: int | None
    column: int | None
    field: str
    message: str

    def __str__(self) -> str:
        field = f"{self.field}: " if self.field else ""
        return f"{location(self.file, self.line, self.column)}: {field}{self.message}"


def location(file: str, line: int | None, column: int | None) -> str:
    """``file``, ``file:line`` or ``file:line:column``, as far as the place is known."""
    if line is None:
        return file
    return f"{file}:{line}" if column is None else f"{file}:{line}:{column}"


def position(text: str | bytes, offset: int) -> tuple[int, int]:
    """The 1-based (line, column) of the character (or byte) at ``offset`` in ``text``."""
    newline = "\n" if isinstance(text, str) else b"\n"
    before = text[:offset]
    return before.count(newline) + 1, offset - (before.rfind(newline) + 1) + 1  # type: ignore[arg-type]


def not_utf8(data: bytes, exc: UnicodeDecodeError) -> tuple[int, int, str]:
    """Where a file that is not UTF-8 text goes wrong, and what is there: (line, column, message)."""
    line, column = position(data, exc.start)
    return line, column, f"not UTF-8 text: byte 0x{data[exc.start]:02x} ({exc.reason}); expected UTF-8 text"


class ScenarioError(ChaosgateError):
    """A scenario file is unreadable or invalid; carries every problem found in it."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class PlanError(ChaosgateError):
    """A scenario is valid on its own but cannot be turned into a timeline."""


class StackError(ChaosgateError):
    """A component of the stack could not be started, reached or stopped."""


class ComponentMissing(StackError):
    """A binary the stack needs (envoy, toxiproxy-server) is not installed."""


class PortInUse(StackError):
    """A port that was asked for is already bound by another process."""


class StartupTimeout(StackError):
    """A component did not become ready before its deadline."""


class FaultError(ChaosgateError):
    """A fault could not be injected or cleared."""


class JournalError(ChaosgateError):
    """A journal file is missing, empty or malformed."""


class LoadError(ChaosgateError):
    """The load could not be driven as the scenario asked: a distributed load worker died mid-run."""
