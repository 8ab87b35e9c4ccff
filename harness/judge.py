"""Verdicts from a journal: a pure function, so any past run can be judged again."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.expectations import Verdict
from harness.journal import read_journal
from harness.scenario import Scenario, parse_scenario
from harness.timeline import Timeline, build_timeline


@dataclass(frozen=True)
class Judgement:
    """A judged run: the scenario, what happened, and a verdict per expectation."""

    scenario: Scenario
    header: dict[str, Any]
    timeline: Timeline
    verdicts: list[Verdict]

    @property
    def passed(self) -> bool:
        return self.timeline.complete and all(v.passed for v in self.verdicts)


def judge_events(events: list[dict[str, Any]]) -> Judgement:
    header = events[0]
    scenario = parse_scenario(header["text"], header["file"])
    timeline = build_timeline(events)
    return Judgement(scenario, header, timeline, [e.evaluate(timeline) for e in scenario.expect])


def judge_journal(path: Path) -> Judgement:
    """Read a journal file and judge it."""
    return judge_events(read_journal(path))
