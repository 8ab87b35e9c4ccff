"""Writes what a journal says to disk: a run's summary.json and HTML report, a suite's index.

Everything here is rendered from journals (or from the summaries rendered from them), so any
past run, even one that was killed, can be rendered again with ``chaosgate report``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import JournalError, ScenarioError
from harness.journal import read_journal
from harness.report.data import RunData, utc
from harness.report.html import render_index, render_run

JOURNAL, SUMMARY, REPORT = "journal.jsonl", "summary.json", "index.html"


@dataclass(frozen=True)
class Outputs:
    run: RunData
    summary: dict[str, Any]
    report: Path


def load_run(journal: Path, warn: Callable[[str], None] | None = None) -> RunData:
    """Read and judge a journal file (``warn``: see read_journal)."""
    events = read_journal(journal, warn)
    try:
        return RunData.from_events(events)
    except ScenarioError as exc:  # the header's scenario text was edited: name the journal's line, then the text's
        problems = "\n".join(f"  {problem}" for problem in exc.problems)
        raise JournalError(f"{journal}:1: run.started: text: expected the YAML of a valid scenario; "
                           f"in it (lines of the text):\n{problems}") from exc


def write_outputs(journal: Path, run_dir: Path, warn: Callable[[str], None] | None = None) -> Outputs:
    """Judge ``journal`` and write ``summary.json`` and the report ``index.html`` into ``run_dir``."""
    run = load_run(journal, warn)
    run_dir.mkdir(parents=True, exist_ok=True)
    summary = {**run.summary(), "report": REPORT}
    (run_dir / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    report = run_dir / REPORT
    report.write_text(render_run(run, journal_name=os.path.relpath(journal, run_dir)), encoding="utf-8")
    return Outputs(run, summary, report)


def journals_in(path: Path) -> list[Path]:
    """A journal file itself; a run folder's journal; or the journal of every run folder in a suite folder."""
    if path.is_file():
        return [path]
    if (path / JOURNAL).is_file():
        return [path / JOURNAL]
    found = sorted(path.glob(f"*/{JOURNAL}"))
    if not found:
        raise JournalError(f"{path}: no {JOURNAL} in this folder or in its subfolders")
    return found


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    """A run folder's summary.json, or None when it has none (or an unreadable one)."""
    try:
        data = json.loads((run_dir / SUMMARY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "scenario" in data else None


def write_index(suite_dir: Path) -> Path | None:
    """``suite_dir/index.html``: every run folder in it that has a summary, with a link to its report."""
    entries = []
    for run_dir in sorted(p for p in suite_dir.iterdir() if p.is_dir()):
        summary = read_summary(run_dir)
        if summary is None:
            continue
        started = summary.get("started")
        entries.append({
            "scenario": summary["scenario"], "description": summary.get("description") or "",
            "passed": bool(summary.get("passed")), "complete": bool(summary.get("complete")),
            "expectations": summary.get("expectations", []), "faults": summary.get("faults", []),
            "requests": summary.get("requests", 0), "failed_requests": summary.get("failed_requests", 0),
            "link": f"{run_dir.name}/{summary.get('report', REPORT)}",
            "started_text": utc(started) if started else "",
        })
    if not entries:
        return None
    index = suite_dir / REPORT
    partial = index.with_name(f".{REPORT}.{os.getpid()}")  # runs side by side write it too: replace it whole
    partial.write_text(render_index(entries), encoding="utf-8")
    partial.replace(index)
    return index
