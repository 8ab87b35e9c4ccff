"""The comparison table as JSON, Markdown and a self-contained HTML page (the reports' style)."""

from __future__ import annotations

import json
from pathlib import Path

from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined, select_autoescape

from harness import __version__
from harness.compare.table import ComparisonTable, FaultRow, GatewayRow
from harness.durations import format_duration
from harness.promise.window import NOT_OBSERVED_DETECTION, NOT_OBSERVED_RECOVERY, width_text

# The page extends the reports' layout and stylesheet (harness/report/templates), so it looks like them.
TEMPLATES = Environment(loader=ChoiceLoader([PackageLoader("harness.compare", "templates"),
                                             PackageLoader("harness.report", "templates")]),
                        autoescape=select_autoescape(default=True), undefined=StrictUndefined,
                        trim_blocks=True, lstrip_blocks=True)
TEMPLATES.globals["version"] = __version__
TEMPLATES.filters["sentence"] = lambda text: str(text)[:1].upper() + str(text)[1:]

NOT_APPLICABLE = "n/a"


def seconds(value: float | None, never: str = "never") -> str:
    return never if value is None else format_duration(round(value, 3))


def promise_text(fault: FaultRow, which: str) -> str:
    promise = fault.promised_detection if which == "detection" else fault.promised_recovery
    return NOT_APPLICABLE if promise is None or promise.to_json().get("unknown") else promise.text()


def window_text(fault: FaultRow, which: str) -> str:
    """The promised window with its width beside the fault's duration ("" when there is no window)."""
    promise = fault.promised_detection if which == "detection" else fault.promised_recovery
    width = width_text(promise, fault.duration)
    return f"{promise.text()}: {width}" if promise is not None and width else ""


def promised_text(fault: FaultRow, which: str) -> str:
    """The promise as the tables show it: a window with its width beside the fault's duration, or never/n/a."""
    return window_text(fault, which) or promise_text(fault, which)


def kept_text(fault: FaultRow, which: str, inside: str = "inside") -> str:
    """Whether the fault's detection or recovery was inside its promised window: ``inside`` (the word),
    OUTSIDE, n/a, or, when the gateway never acted and the run ended before the window did,
    'not observed: the load ended N s after the fault, the promise allows up to M s'."""
    placement = fault.detection_placement if which == "detection" else fault.recovery_placement
    if placement.where == "not observed":
        return placement.not_observed(*(NOT_OBSERVED_DETECTION if which == "detection" else NOT_OBSERVED_RECOVERY))
    return NOT_APPLICABLE if placement.held is None else (inside if placement.held else "OUTSIDE")


def kept_css(fault: FaultRow, which: str, inside: str = "inside") -> str:
    """The CSS class of ``kept_text``: kept-INSIDE, kept-outside or kept-na."""
    held = (fault.detection_placement if which == "detection" else fault.recovery_placement).held
    return "kept-" + (inside if held else "outside" if held is False else "na")


def errors_text(fault: FaultRow) -> str:
    if not fault.errors:
        return f"none of {fault.requests}"
    return "; ".join(f"{count} × {kind}" for kind, count in fault.errors.items()) + f" (of {fault.requests})"


def all_down_text(fault: FaultRow) -> str:
    if fault.all_down is None:
        return NOT_APPLICABLE
    answer = fault.all_down
    status = "no HTTP answer" if answer.status is None else str(answer.status)
    return f"{status} {answer.body!r} ({answer.share:.0%} of failures)"


def broken_text(fault: FaultRow) -> str:
    return "n/a (never detected)" if fault.to_broken_after_detection is None else str(fault.to_broken_after_detection)


def result_lines(table: ComparisonTable, label: str = "") -> list[str]:
    """One line per gateway for the terminal: status, requests, failures and why it did not run."""
    return [f"{label}{row.gateway:<8} {row.status:<10} {row.requests} requests, {row.failed_requests} failed"
            + (f"  ({row.reason})" if row.reason else "") for row in table.rows]


def to_json(table: ComparisonTable) -> str:
    return json.dumps(table.to_json(), indent=2) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(table: ComparisonTable) -> str:
    lines = [f"# {table.scenario}: {len(table.rows)} gateways compared", "",
             f"Scenario `{table.file}`, runtime {table.runtime}. Times are from the fault's start (detection) "
             "and end (recovery) to the moment the gateway's own view showed every replica of the fault "
             "unhealthy / healthy again; 'kept' says whether that is inside the window the gateway's own "
             "configuration promises (n/a: no formula for that gateway; not observed: the gateway never acted and the "
             "run ended before the promised window did).", ""]
    lines += ["| gateway | version | status | requests (failed) | report |", "|---|---|---|---|---|"]
    for row in table.rows:
        lines.append(f"| {row.gateway} | {row.version or ''} | {row.status} | {row.requests} ({row.failed_requests}) "
                     f"| {row.report or _md_cell(row.reason or '')} |")
    for label in table.fault_labels:
        lines += ["", f"## {label}", "",
                  "| gateway | detected | promised | kept | recovered | promised | kept | errors during the fault "
                  "| to broken replica after detection | all-down answer |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for row, fault in faults_of(table, label):
            lines.append("| " + " | ".join(_md_cell(cell) for cell in (
                row.gateway, seconds(fault.detected_after), promised_text(fault, "detection"),
                kept_text(fault, "detection"), seconds(fault.recovered_after), promised_text(fault, "recovery"),
                kept_text(fault, "recovery"), errors_text(fault), broken_text(fault), all_down_text(fault))) + " |")
    return "\n".join(lines) + "\n"


def faults_of(table: ComparisonTable, label: str) -> list[tuple[GatewayRow, FaultRow]]:
    return [(row, fault) for row in table.rows for fault in row.faults if fault.label == label]


def to_html(table: ComparisonTable) -> str:
    return TEMPLATES.get_template("gateways.html.j2").render(
        table=table, faults_of=faults_of, seconds=seconds, promise_text=promise_text, kept_text=kept_text, kept_css=kept_css,
        promised_text=promised_text,
        errors_text=errors_text, all_down_text=all_down_text, broken_text=broken_text)


def write_pages(out_dir: Path, stem: str, json_text: str, markdown: str, html: str) -> Path:
    """Write STEM.json, STEM.md and STEM.html into ``out_dir``; the HTML page's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.json").write_text(json_text, encoding="utf-8")
    (out_dir / f"{stem}.md").write_text(markdown, encoding="utf-8")
    page = out_dir / f"{stem}.html"
    page.write_text(html, encoding="utf-8")
    return page
