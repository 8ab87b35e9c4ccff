"""The index of a comparison suite: one row per scenario, one column per gateway (HTML, Markdown, JSON).

Each cell is one gateway's run of one scenario: its status and, per fault, the detection and
recovery times with whether each was inside the window the gateway's own configuration promises.
Each scenario's own comparison (``compare.html``) lies in the folder named after the scenario.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.compare.render import TEMPLATES, kept_css, kept_text, seconds, window_text, write_pages
from harness.compare.table import ComparisonTable, FaultRow, GatewayRow

STATUSES = ("PASSED", "FAILED", "INCOMPLETE", "NOT RUN")
KEPT = "kept"


@dataclass(frozen=True)
class Measure:
    """Detection or recovery of one fault: the time and whether the promise was kept."""

    what: str        # "detected" or "recovered"
    time: str        # e.g. "1.5 s", "never"
    kept: str        # kept, OUTSIDE, n/a or "not observed: ..." (harness/compare/render.kept_text)
    css: str         # kept-kept, kept-outside or kept-na
    window: str = ""  # the promised window and its width beside the fault's duration, e.g.
                      # "[1s, 2.04s] +200ms margin: width 1.26s of a 7s fault"


def measures(fault: FaultRow) -> list[Measure]:
    return [Measure("detected", seconds(fault.detected_after), kept_text(fault, "detection", KEPT),
                    kept_css(fault, "detection", KEPT), window_text(fault, "detection")),
            Measure("recovered", seconds(fault.recovered_after), kept_text(fault, "recovery", KEPT),
                    kept_css(fault, "recovery", KEPT), window_text(fault, "recovery"))]


@dataclass(frozen=True)
class SuiteIndex:
    """The comparisons of several scenarios on the same gateways, in the order they ran."""

    gateways: list[str]
    runtime: str
    tables: list[ComparisonTable]                      # the scenarios compared so far
    pending: list[str] = field(default_factory=list)   # scenarios not compared (not yet, or interrupted)
    interrupted: bool = False

    def cell(self, table: ComparisonTable, gateway: str) -> GatewayRow | None:
        return next((row for row in table.rows if row.gateway == gateway), None)

    @property
    def counts(self) -> dict[str, int]:
        """Runs by status, in the order of STATUSES, only the statuses that occur."""
        counter = Counter(row.status for table in self.tables for row in table.rows)
        return {status: counter[status] for status in STATUSES if counter[status]}

    @property
    def headline(self) -> str:
        runs = sum(self.counts.values())
        done = f"{self.counts.get('PASSED', 0)} of {runs} runs passed"
        scenarios = len(self.tables) + len(self.pending)
        if self.interrupted:
            return f"interrupted after {len(self.tables)} of {scenarios} scenarios; {done}"
        if self.pending:
            return f"running: {len(self.tables)} of {scenarios} scenarios compared; {done}"
        return f"{scenarios} scenarios on {len(self.gateways)} gateways; {done}"

    def to_json(self) -> dict[str, Any]:
        return {"gateways": self.gateways, "runtime": self.runtime, "interrupted": self.interrupted,
                "counts": self.counts, "pending": self.pending,
                "scenarios": [{"scenario": t.scenario, "file": t.file, "comparison": link(t),
                               "gateways": [_cell_json(t, row) for row in t.rows]} for t in self.tables]}


def link(table: ComparisonTable) -> str:
    """The scenario's comparison page, relative to the index (each scenario has the folder of its name)."""
    return f"{table.scenario}/compare.html"


def report_link(table: ComparisonTable, row: GatewayRow) -> str | None:
    """The run's own report, relative to the index."""
    return None if row.report is None else f"{table.scenario}/{row.report}"


def _cell_json(table: ComparisonTable, row: GatewayRow) -> dict[str, Any]:
    return {"gateway": row.gateway, "status": row.status, "reason": row.reason, "report": report_link(table, row),
            "faults": [{key: fault.to_json()[key] for key in ("fault", "duration", "detected_after", "detection_kept",
                                                              "detection_width", "recovered_after", "recovery_kept",
                                                              "recovery_width")}
                       for fault in row.faults]}


def _md_cell(index: SuiteIndex, table: ComparisonTable, gateway: str) -> str:
    row = index.cell(table, gateway)
    if row is None:
        return ""
    parts = [f"[{row.status}]({link(table)})"]
    parts += [f"{fault.label}: " + ", ".join(f"{m.what} {m.time} {m.kept}" + (f" ({m.window})" if m.window else "")
                                             for m in measures(fault))
              for fault in row.faults]
    if row.reason:
        parts.append(row.reason.replace("\n", " "))
    return "<br>".join(part.replace("|", "\\|") for part in parts)


def to_markdown(index: SuiteIndex) -> str:
    lines = [f"# Gateway comparison: {index.headline}", "",
             f"Runtime {index.runtime}. Per fault: detection (from the fault's start) and recovery (from its end) "
             "as the gateway's own view showed them, and whether each was inside the window the gateway's own "
             "configuration promises (kept / OUTSIDE / n/a: no formula for that gateway / not observed: the gateway "
             "never acted and the run ended before the window did), with that window and its width beside the "
             "fault's duration (a window as wide as the fault could not fail). Each status links to the scenario's "
             "comparison.", ""]
    lines += ["| scenario | " + " | ".join(index.gateways) + " |", "|---" * (len(index.gateways) + 1) + "|"]
    for table in index.tables:
        cells = [_md_cell(index, table, gateway) for gateway in index.gateways]
        lines.append(f"| {table.scenario} | " + " | ".join(cells) + " |")
    if index.pending:
        lines += ["", ("Not compared (interrupted): " if index.interrupted else "Still to compare: ")
                  + ", ".join(index.pending)]
    return "\n".join(lines) + "\n"


def to_json(index: SuiteIndex) -> str:
    return json.dumps(index.to_json(), indent=2) + "\n"


def to_html(index: SuiteIndex) -> str:
    return TEMPLATES.get_template("index.html.j2").render(index=index, link=link, report_link=report_link,
                                                          measures=measures)


def write_suite_index(index: SuiteIndex, out_dir: Path) -> Path:
    """Write index.html, index.md and index.json into ``out_dir``; the HTML page's path."""
    return write_pages(out_dir, "index", to_json(index), to_markdown(index), to_html(index))
