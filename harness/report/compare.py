"""A baseline run against a new one: per expectation, the measured value then and now.

Runs are paired by scenario name and expectations by kind and parameters, so reordering a
scenario's expect list does not pair the wrong values. Every expectation kind bounds its
measured value from above (detection time, error rate, requests, latency ≤ bound), so a
higher value is worse; a change of less than 10% of the old value counts as the same.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

NOISE = 0.10  # relative change below which two measurements count as the same


@dataclass(frozen=True)
class Row:
    """One expectation in both runs (``then`` or ``now`` is None when only one run has it)."""

    then: dict[str, Any] | None
    now: dict[str, Any] | None

    @property
    def verdict(self) -> dict[str, Any]:
        return self.now or self.then or {}

    @property
    def delta(self) -> float | None:
        old, new = _value(self.then), _value(self.now)
        return None if old is None or new is None else new - old

    @property
    def change(self) -> str:
        """new, removed, regressed, fixed, worse, better or same."""
        if self.then is None:
            return "new"
        if self.now is None:
            return "removed"
        if self.then["passed"] and not self.now["passed"]:
            return "regressed"
        if self.now["passed"] and not self.then["passed"]:
            return "fixed"
        old, new = _value(self.then), _value(self.now)
        if old is None or new is None:
            return "same" if old is new else ("worse" if new is None else "better")
        if abs(new - old) <= NOISE * abs(old) or new == old:
            return "same"
        return "worse" if new > old else "better"

    @property
    def delta_text(self) -> str:
        delta = self.delta
        if delta is None:
            return ""
        measured = str(self.verdict.get("measured", ""))
        if measured.endswith("%"):
            return f"{delta * 100:+.2f} pp"
        if measured.endswith("s") and not measured.endswith("requests"):
            return f"{delta:+.3f}s"
        return f"{delta:+g}"


def _value(verdict: dict[str, Any] | None) -> float | None:
    """The measured number; 'never' (no measurement where one was due) counts as infinitely bad."""
    if verdict is None:
        return None
    value = verdict.get("measured_value")
    if value is None and verdict.get("measured") == "never":
        return float("inf")
    return None if value is None else float(value)


@dataclass(frozen=True)
class ScenarioComparison:
    scenario: str
    then: dict[str, Any] | None   # summary.json of the baseline run (None: not in the baseline)
    now: dict[str, Any] | None
    rows: list[Row]


@dataclass(frozen=True)
class Comparison:
    baseline: str
    new: str
    scenarios: list[ScenarioComparison]

    @property
    def regressions(self) -> list[tuple[str, Row]]:
        return [(s.scenario, r) for s in self.scenarios for r in s.rows if r.change in ("regressed", "worse")]


def _keys(verdicts: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    """(kind, params, n-th occurrence) for each verdict, so duplicates pair in order."""
    seen: Counter[tuple[str, str]] = Counter()
    keys = []
    for v in verdicts:
        key = (v["kind"], json.dumps(v.get("params", {}), sort_keys=True))
        keys.append((*key, seen[key]))
        seen[key] += 1
    return keys


def compare_runs(then: dict[str, Any] | None, now: dict[str, Any] | None) -> list[Row]:
    """Pair the expectations of two summaries of the same scenario, in the new run's order."""
    old = dict(zip(_keys((then or {}).get("expectations", [])), (then or {}).get("expectations", []), strict=True))
    new_verdicts = (now or {}).get("expectations", [])
    new_keys = _keys(new_verdicts)
    rows = [Row(old.get(key), verdict) for key, verdict in zip(new_keys, new_verdicts, strict=True)]
    rows += [Row(verdict, None) for key, verdict in old.items() if key not in set(new_keys)]
    return rows


def compare(baseline: str, new: str, then: list[dict[str, Any]], now: list[dict[str, Any]]) -> Comparison:
    """Compare two sets of run summaries (one run each, or two suites), paired by scenario name."""
    old_by_name = {s["scenario"]: s for s in then}
    new_by_name = {s["scenario"]: s for s in now}
    names = list(new_by_name) + [n for n in old_by_name if n not in new_by_name]
    scenarios = [ScenarioComparison(n, old_by_name.get(n), new_by_name.get(n),
                                    compare_runs(old_by_name.get(n), new_by_name.get(n))) for n in names]
    return Comparison(baseline, new, scenarios)
