"""HTML resilience reports, suite indexes, comparisons and JUnit, all rendered from journals.

    data.py     a journal's events → RunData (judgement, faults with detection/recovery, facts)
    series.py   Timeline → what the charts draw (rates, percentiles, health lanes, moments)
    svg.py      series → inline SVG charts
    advice.py   failed expectations and injected faults → causes (harness/catalogue.py), with what the run measured
    compare.py  two sets of summaries → per-expectation then/now
    junit.py    summaries → JUnit XML
    html.py     Jinja2 templates (templates/) → self-contained HTML pages
"""

from __future__ import annotations

from harness.report.compare import Comparison, compare
from harness.report.data import RunData
from harness.report.html import render_comparison, render_index, render_run
from harness.report.junit import junit_xml

__all__ = ["Comparison", "RunData", "compare", "junit_xml", "render_comparison", "render_index", "render_run"]
