"""Verdicts from a journal: a pure function, so any past run can be judged again."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.expectations import Verdict
from harness.journal import read_journal
from harness.promise.verdicts import judge_all
from harness.promise.window import Promise
from harness.own_config import pin_text
from harness.scenario import Scenario, parse_scenario
from harness.timeline import Timeline, build_timeline


@dataclass(frozen=True)
class Judgement:
    """A judged run: the scenario, what happened, and a verdict per expectation."""

    scenario: Scenario
    header: dict[str, Any]
    timeline: Timeline
    verdicts: list[Verdict]
    promises: list[Promise | None] = field(default_factory=list)  # per expectation: its promised window

    @property
    def passed(self) -> bool:
        return self.timeline.complete and all(v.passed for v in self.verdicts)


def judge_events(events: list[dict[str, Any]]) -> Judgement:
    header = events[0]
    # The gateway the run used: the file's, or the one `--gateway` chose (journals before it: the file's).
    own = header.get("gateway_config")  # the user's own gateway file, as the run read it (harness/own_config/)
    if isinstance(own, dict):
        pin_text(str(own["file"]), str(own["text"]))
    scenario = parse_scenario(header["text"], header["file"], header.get("gateway"),
                              Path(own["file"]) if isinstance(own, dict) else None, header.get("allow_hosts", ()))
    timeline = build_timeline(events)
    verdicts, promises = judge_all(scenario, timeline)  # detection/recovery next to the promised window
    return Judgement(scenario, header, timeline, verdicts, promises)


def judge_journal(path: Path) -> Judgement:
    """Read a journal file and judge it."""
    return judge_events(read_journal(path))
