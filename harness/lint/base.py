"""The lint seam: a trap is a gateway setting (often a default) that silently defeats what a
scenario assumes. Each trap is one module with one ``TRAP``; it looks at the validated scenario
and returns hits, each naming the scenario field it is about; the lint locates that field in
the file (line and column, as validation errors do) and says what to change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from harness.errors import location
from harness.scenario import Scenario
from harness.yaml_source import Path as YamlPath
from harness.yaml_source import YamlDocument

# warning: the trap may bite, depending on timing or load; error: the configuration guarantees the
# mechanism the scenario relies on does nothing (e.g. outlier detection that can eject no replica).
Severity = Literal["warning", "error"]


@dataclass(frozen=True)
class Hit:
    """One place a trap bites: the scenario field it is about, and what happens and what to change."""

    path: YamlPath
    message: str


@dataclass(frozen=True)
class Trap:
    """A known configuration trap of one gateway kind."""

    id: str                 # e.g. 'envoy.no-traffic-interval'
    gateway: str            # the gateway kind it applies to
    severity: Severity
    summary: str            # one line: what the trap is (chaosgate lint --help, docs/lint.md)
    check: Callable[[Scenario], list[Hit]]


@dataclass(frozen=True)
class Check:
    """A check of the scenario itself, whatever its gateway (a promise its expectations cannot use, a
    number without a unit): it sees the file too, for what the model no longer knows (how a value was
    written)."""

    id: str                 # e.g. 'scenario.unitless-duration'
    severity: Severity
    summary: str
    check: Callable[[Scenario, YamlDocument | None], list[Hit]]


@dataclass(frozen=True)
class Finding:
    """A trap that bites in one scenario file, at a field's line."""

    trap: str
    gateway: str
    severity: Severity
    file: str
    line: int | None
    column: int | None
    field: str
    message: str

    def __str__(self) -> str:
        return f"{location(self.file, self.line, self.column)}: {self.severity} [{self.trap}] {self.field}: {self.message}"

    def without_severity(self) -> str:
        """The finding for a line that already says it is a warning (a run's progress output)."""
        return f"{location(self.file, self.line, self.column)}: [{self.trap}] {self.field}: {self.message}"


def field_name(path: YamlPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def locate(doc: YamlDocument | None, path: YamlPath) -> tuple[int | None, int | None]:
    """The line of the field, or of its closest ancestor the file writes (a default is not in the file)."""
    return doc.locate(path) if doc is not None else (None, None)
