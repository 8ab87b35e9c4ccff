"""Generated reports opened in a real headless Chromium: what a person sees, on synthetic journals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.output import write_index, write_outputs
from harness.report.svg import label_width

from .browser import Page
from .journals import EXPECTED_FAILURES, reset_run, write_journal

# Read the rendered page the way a person looks at it: sizes on screen, text as shown.
LOOK = """(() => {
  const seen = el => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && el.checkVisibility({visibilityProperty: true, opacityProperty: true});
  };
  const charts = [...document.querySelectorAll("svg.chart")].map(svg => ({
    name: svg.dataset.chart,
    width: svg.getBoundingClientRect().width,
    drawn: [...svg.querySelectorAll("path.series, rect.lane")].filter(e => {
      const b = e.getBBox(); return b.width > 1 && b.height > 1; }).length,
    faults: [...svg.querySelectorAll("g.fault rect")].map(r => ({
      width: r.getBoundingClientRect().width,
      opacity: parseFloat(getComputedStyle(r).fillOpacity) })),
    moments: [...svg.querySelectorAll("g.moment text")].filter(seen).map(t => t.textContent),
    empty: [...svg.querySelectorAll("text.empty")].map(t => t.textContent),
  }));
  const rows = [...document.querySelectorAll("table.verdicts tbody tr")].map(tr => ({
    visible: seen(tr), kind: tr.dataset.kind,
    cells: [...tr.cells].map(c => c.innerText.trim()) }));
  return {
    title: document.title,
    h1: document.querySelector("h1").innerText,
    banner: [...document.querySelectorAll("[data-incomplete]")].filter(seen).map(e => e.innerText),
    charts, rows,
    advice: [...document.querySelectorAll("article.advice h3")].filter(seen).map(h => h.innerText),
    config_visible: seen(document.querySelector("details.gateway-config pre")),
  };
})()"""


def _look(page: Page, report: Path) -> dict[str, Any]:
    page.open(report.as_uri())
    seen: dict[str, Any] = page.evaluate(LOOK)
    assert page.console_errors() == []
    assert page.requested_urls() == [report.as_uri()], "the page fetched something besides itself"
    return seen


def test_a_failed_runs_report_shows_charts_faults_and_verdicts(page: Page, journal: Path) -> None:
    report = write_outputs(journal, journal.parent).report
    seen = _look(page, report)
    assert seen["title"] == "synthetic-reset: FAILED · chaosgate report"
    assert seen["h1"].split() == ["synthetic-reset", "FAILED"]
    assert [c["name"] for c in seen["charts"]] == ["requests", "errors", "latency", "health"]
    for chart in seen["charts"]:
        assert chart["width"] > 800, chart
        assert chart["drawn"] >= 1 and chart["empty"] == [], chart
        assert len(chart["faults"]) == 1 and chart["faults"][0]["width"] > 300 and chart["faults"][0]["opacity"] > 0
        assert chart["moments"] == ["detected 1.50s", "recovered 1.50s"]
    assert next(c for c in seen["charts"] if c["name"] == "requests")["drawn"] == 4  # three replicas + failed
    assert next(c for c in seen["charts"] if c["name"] == "health")["drawn"] == 5  # chat[0] in 3 bands
    rows = seen["rows"]
    assert len(rows) == 4 and all(r["visible"] and all(r["cells"]) for r in rows)
    assert [r["kind"] for r in rows if r["cells"][1] == "FAIL"] == list(EXPECTED_FAILURES)
    assert rows[1]["cells"][3:5] == ["≤ 1s", "1.500s"]
    assert len(seen["advice"]) == 3
    assert seen["banner"] == [] and seen["config_visible"] is False  # collapsed until opened


def test_printing_opens_the_collapsed_configuration(page: Page, journal: Path) -> None:
    report = write_outputs(journal, journal.parent).report
    page.open(report.as_uri())
    pdf = page.print_pdf()
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages") >= 3
    assert page.evaluate("[...document.querySelectorAll('details')].every(d => d.open)") is True
    assert page.evaluate("document.querySelector('details.gateway-config pre').checkVisibility()") is True
    assert page.console_errors() == []


def test_a_killed_runs_report_is_marked_incomplete(page: Page, tmp_path: Path) -> None:
    journal = write_journal(tmp_path / "killed" / "journal.jsonl", reset_run(cut_at=9.0))
    seen = _look(page, write_outputs(journal, journal.parent).report)
    assert seen["h1"].split() == ["synthetic-reset", "INCOMPLETE"]
    assert len(seen["banner"]) == 1 and "killed or crashed" in seen["banner"][0]
    assert all(c["drawn"] >= 1 for c in seen["charts"])
    assert [c["moments"] for c in seen["charts"]][0] == ["detected 1.50s"]  # it never recovered before the cut


def test_the_suite_index_links_to_every_report(page: Page, tmp_path: Path) -> None:
    for name, detect in (("a-run", 0.9), ("b-run", 1.5)):
        events = reset_run(detect_after=detect, scenario=reset_run()[0]["text"].replace("synthetic-reset", name))
        journal = write_journal(tmp_path / name / "journal.jsonl", events)
        write_outputs(journal, journal.parent)
    index = write_index(tmp_path)
    assert index is not None
    page.open(index.as_uri())
    assert page.console_errors() == []
    links = page.evaluate("[...document.querySelectorAll('table.suite a')].map(a => [a.innerText, a.href])")
    assert [text for text, _ in links] == ["a-run", "b-run"]
    cells = page.evaluate("[...document.querySelectorAll('table.suite tbody tr')].map(tr => tr.innerText)")
    assert "FAILED" in cells[0] and "reset_peer@chat[0]: 900ms / 1.5s" in cells[0]
    page.open(links[1][1])
    assert page.evaluate("document.querySelector('h1').innerText").split() == ["b-run", "FAILED"]
    assert page.console_errors() == []


LABELS = """(() => [...document.querySelectorAll("svg.chart")].map(svg => ({
  name: svg.dataset.chart,
  labels: [...svg.querySelectorAll("g.fault text")].map(t => {
    const b = t.getBBox(); return {text: t.textContent, x: b.x, y: b.y, w: b.width, h: b.height}; }),
  legend: svg.closest("figure, section, div")?.innerText ?? "",
})))()"""


def test_labels_of_faults_that_start_together_do_not_overprint(page: Page, tmp_path: Path) -> None:
    events = reset_run()
    for e in [e for e in events if e["type"] in ("fault.started", "fault.cleared")]:
        events.insert(events.index(e) + 1, {**e, "fault": "latency@chat[1]", "kind": "latency", "target": "chat[1]",
                                            "replicas": ["chat[1]"], "params": {"latency": 1.0}})
    rate_limited = ('{"error":{"message":"Rate limit reached for requests","type":"requests","param":null,'
                    '"code":"rate_limit_exceeded"}}')
    for e in events:
        if e["type"] == "request" and e.get("status") == 503:
            e.update(status=429, error="http_4xx", body=rate_limited)
    journal = write_journal(tmp_path / "together" / "journal.jsonl", events)
    page.open(write_outputs(journal, journal.parent).report.as_uri())
    assert page.console_errors() == []
    charts = page.evaluate(LABELS)
    assert len(charts) == 4
    for chart in charts:
        labels = chart["labels"]
        assert [label["text"] for label in labels] == ["reset_peer@chat[0]", "latency@chat[1]"], chart
        a, b = labels
        apart = a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"] or a["y"] + a["h"] <= b["y"] \
            or b["y"] + b["h"] <= a["y"]
        assert apart, f"{chart['name']}: the labels overprint: {labels}"
        assert all(label["w"] <= label_width(label["text"]) for label in labels), labels  # the estimate holds
    text = page.evaluate("document.body.innerText")
    assert "429 requests: Rate limit reached for requests" in text
    assert '{"error"' not in text.split("Scenario")[0]
