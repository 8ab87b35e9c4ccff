"""HTML pages from Jinja2 templates (autoescaped): a run's report, the suite index, a comparison.

Every page is one self-contained file: the stylesheet is inlined, charts are inline SVG, and
nothing is fetched from the network, so it opens anywhere and prints as it looks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from harness import __version__
from harness.report.advice import advise, gateway_settings
from harness.report.compare import Comparison
from harness.report.data import RunData
from harness.report.series import (
    NOT_SERVED_COLOR, Series, axis_for, error_rate_by_kind, health_lanes, latency, moments, served_rate,
)
from harness.report.svg import STATE_COLORS, Overlay, fmt_seconds, health_chart, line_chart, stacked_chart
from harness.report.tries import TriesShown, tries_for

_ENV = Environment(loader=PackageLoader("harness.report", "templates"), autoescape=select_autoescape(default=True),
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_ENV.globals["version"] = __version__
_ENV.filters["sentence"] = lambda text: str(text)[:1].upper() + str(text)[1:]  # capitalize() lowercases the rest


@dataclass(frozen=True)
class Chart:
    name: str
    title: str
    svg: Markup
    legend: list[tuple[str, str, bool]]   # label, colour, dashed
    caption: str


def _legend(series: list[Series]) -> list[tuple[str, str, bool]]:
    return [(s.label, s.color, s.dashed) for s in series]


def charts(run: RunData) -> list[Chart]:
    """The four timeline charts of a run, sharing one time axis and one overlay."""
    timeline = run.timeline
    axis = axis_for(timeline)
    overlay = Overlay(timeline.faults, moments(run.faults))
    served, errors, times = served_rate(timeline, axis), error_rate_by_kind(timeline, axis), latency(timeline, axis)
    bucket = f"Each step is {axis.step:g}s wide."
    served_caption = f"{bucket} Requests count when they started."
    attach = run.header.get("attach")
    health_caption = "Sampled from the gateway's admin API 20 times a second; hover a band for the gateway's reason."
    if isinstance(attach, dict) and not attach.get("admin_url"):
        health_caption = (f"Not read: chaosgate attached to the gateway at {attach.get('url')} without --attach-admin, "
                          "so it had no view of the gateway's health (docs/own-config/attach.md).")
    if any(s.color == NOT_SERVED_COLOR for s in served):
        served_caption += (" 'No replica (failed)' are requests that no replica answered (the gateway's own error "
                           "replies and broken connections).")
    return [
        Chart("requests", "Requests per second, by the replica that served them",
              stacked_chart("requests", "Requests per second by serving replica", served, axis, overlay,
                            empty="no requests were recorded"),
              _legend(served), served_caption),
        Chart("errors", "Errors per second, by kind",
              stacked_chart("errors", "Failed requests per second by kind", errors, axis, overlay,
                            empty="no request failed"),
              _legend(errors), f"{bucket} The kind is the status and the gist of the body the client got (for a "
              "JSON error, its type and message), or how the connection failed (connect, reset, timeout, "
              "stream_incomplete)."),
        Chart("latency", "Latency of successful requests" + (" and time to first token of streams"
                                                              if len(times) > 3 else ""),
              line_chart("latency", "Latency percentiles", times, axis, overlay, fmt=fmt_seconds,
                         empty="no request succeeded"),
              _legend(times), f"{bucket} Percentiles per step, on a logarithmic scale; gaps are steps with no "
              "successful request."),
        Chart("health", "Health of each replica, as the gateway saw it",
              health_chart("health", "Gateway's view of each replica", health_lanes(timeline, axis), axis, overlay),
              [(state, color, False) for state, color in STATE_COLORS.items()],
              health_caption),
    ]


def render_run(run: RunData, journal_name: str = "journal.jsonl") -> str:
    """The HTML report of one run."""
    judgement, timeline = run.judgement, run.timeline
    scenario = judgement.scenario
    return _ENV.get_template("report.html.j2").render(
        run=run, scenario=scenario, verdicts=judgement.verdicts, timeline=timeline, charts=charts(run),
        promises=judgement.promises or [None] * len(judgement.verdicts), tries=verdict_tries(run),
        moments=moments(run.faults), advice=advise(run), settings=gateway_settings(scenario.gateway),
        journal_name=journal_name, last_event=max(timeline.end, 0.0), scenario_text=run.header.get("text", ""))


def verdict_tries(run: RunData) -> list[TriesShown | None]:
    """Beside each verdict, the tries that reached a ``no_traffic_to`` target in its window (None elsewhere)."""
    expectations, verdicts = run.judgement.scenario.expect, run.judgement.verdicts
    if len(expectations) != len(verdicts):
        return [None] * len(verdicts)
    return [tries_for(e, run.timeline) for e in expectations]


def render_index(entries: list[dict[str, Any]], title: str = "chaosgate suite") -> str:
    """The suite index: every run (its summary.json plus a 'link'), its verdict and a link to its report."""
    return _ENV.get_template("index.html.j2").render(entries=entries, title=title, fmt_seconds=fmt_seconds)


def render_comparison(comparison: Comparison) -> str:
    """Per expectation, the measured value in the baseline run and in the new one."""
    return _ENV.get_template("compare.html.j2").render(comparison=comparison)
