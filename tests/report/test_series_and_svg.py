"""Timeline → chart data → SVG, on synthetic journals (no stack, no browser)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest

from harness.report.data import RunData
from harness.report.series import (
    axis_for, error_label, error_rate_by_kind, health_lanes, latency, moments, served_rate,
)
from harness.report.svg import Overlay, health_chart, label_width, line_chart, stack_rows, stacked_chart
from harness.timeline import Request

from .journals import RESET_BODY, reset_run

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def run() -> RunData:
    return RunData.from_events(reset_run(detect_after=1.5, recover_after=2.0))


def test_axis_has_at_most_100_buckets_of_a_round_width(run: RunData) -> None:
    axis = axis_for(run.timeline)
    assert axis.end == pytest.approx(20.0) and axis.step == 0.25 and axis.buckets == 80
    assert axis.index(-1) == 0 and axis.index(5.1) == 20 and axis.index(99) == 79


def test_served_rate_splits_every_request_by_the_replica_that_served_it(run: RunData) -> None:
    axis = axis_for(run.timeline)
    series = {s.label: s for s in served_rate(run.timeline, axis)}
    assert list(series) == ["chat[0]", "chat[1]", "chat[2]", "no replica (failed)"]
    total = sum(s.total for s in series.values()) * axis.step
    assert total == pytest.approx(len(run.timeline.requests))
    chat0 = series["chat[0]"].values
    assert chat0[axis.index(2.0)] == pytest.approx(20.0)  # a third of 60 req/s before the fault
    assert chat0[axis.index(8.0)] == 0  # ejected: nothing served by it
    assert series["no replica (failed)"].total * axis.step == 30  # the resets before detection


def test_errors_are_labelled_by_status_and_the_gist_of_the_gateways_reply() -> None:
    def failed(status: int | None, error: str, body: str | None = None) -> Request:
        return Request(t=0, latency=0.1, kind="chat", status=status, error=error, replica=None, body=body)

    assert error_label(failed(503, "http_5xx", RESET_BODY)) == "503 upstream reset: connection termination"
    assert error_label(failed(503, "http_5xx", "no healthy upstream")) == "503 no healthy upstream"
    assert error_label(failed(504, "http_5xx", "upstream request timeout")) == "504 upstream request timeout"
    assert error_label(failed(500, "http_5xx", '{"error": "boom"}\nmore')) == "500 boom"
    assert error_label(failed(500, "http_5xx", "plain text\nsecond line")) == "500 plain text"
    assert error_label(failed(None, "timeout")) == "timeout"


def test_error_kinds_beyond_six_fold_into_other(run: RunData) -> None:
    requests = [Request(t=i * 0.1, latency=0.01, kind="chat", status=500 + i, error="http_5xx", replica=None,
                        body=f"kind {i}") for i in range(9)]
    timeline = run.timeline.__class__(t0=0, end=1.0, replicas=[], requests=requests)
    series = error_rate_by_kind(timeline, axis_for(timeline))
    assert len(series) == 6 and series[-1].label == "other"
    assert sum(s.total for s in series) * axis_for(timeline).step == 9


def test_latency_percentiles_of_successes_and_ttft_of_streams(run: RunData) -> None:
    axis = axis_for(run.timeline)
    series = {s.label: s for s in latency(run.timeline, axis)}
    assert list(series) == ["p50", "p95", "p99", "stream TTFT p50", "stream TTFT p95"]
    assert series["p99"].values[0] == pytest.approx(0.34)  # request 0 took 0.3s longer than the rest
    assert all(0.04 <= v <= 0.052 for v in series["p50"].values if v is not None)
    assert all(0.019 <= v <= 0.025 for v in series["stream TTFT p95"].values if v is not None)
    assert series["stream TTFT p50"].dashed and not series["p50"].dashed


def test_health_lanes_follow_the_gateways_view(run: RunData) -> None:
    lanes = {lane.replica: lane for lane in health_lanes(run.timeline, axis_for(run.timeline))}
    states = [(round(s.start, 2), round(s.end, 2), s.state) for s in lanes["chat[0]"].segments]
    assert states == [(0.0, 6.5, "healthy"), (6.5, 15.0, "unhealthy"), (15.0, 20.0, "healthy")]
    assert lanes["chat[0]"].segments[1].flags == "failed_active_health_check"
    assert [s.state for s in lanes["chat[1]"].segments] == ["healthy"]


def test_moments_carry_the_detection_and_recovery_durations(run: RunData) -> None:
    found = moments(run.faults)
    assert [(m.kind, round(m.t, 3), round(m.after, 3)) for m in found] == [("detected", 6.5, 1.5), ("recovered", 15.0, 2.0)]
    assert found[0].label == "detected 1.50s"
    assert "2.000s after the fault ended" in found[1].sentence


def test_charts_are_well_formed_svg_with_faults_shaded_and_moments_marked(run: RunData) -> None:
    timeline = run.timeline
    axis = axis_for(timeline)
    overlay = Overlay(timeline.faults, moments(run.faults))
    charts = [stacked_chart("requests", "t", served_rate(timeline, axis), axis, overlay),
              line_chart("latency", "t", latency(timeline, axis), axis, overlay),
              health_chart("health", "t", health_lanes(timeline, axis), axis, overlay)]
    for chart in charts:
        svg = ET.fromstring(str(chart))
        faults = [g for g in svg.iter(f"{SVG}g") if g.get("class") == "fault"]
        assert [g.get("data-fault") for g in faults] == ["reset_peer@chat[0]"]
        rect = faults[0].find(f"{SVG}rect")
        assert rect is not None
        # 5s..13s of a 20s axis over 876 plot pixels starting at x=64
        assert float(rect.get("x", 0)) == pytest.approx(64 + 876 * 5 / 20, abs=0.1)
        assert float(rect.get("width", 0)) == pytest.approx(876 * 8 / 20, abs=0.1)
        labels = [t.text for g in svg.iter(f"{SVG}g") if g.get("class") == "moment" for t in g.iter(f"{SVG}text")]
        assert labels == ["detected 1.50s", "recovered 2.00s"]
    requests = ET.fromstring(str(charts[0]))
    paths = [p for p in requests.iter(f"{SVG}path") if p.get("class") == "series"]
    assert [p.get("data-series") for p in paths] == ["chat[0]", "chat[1]", "chat[2]", "no replica (failed)"]
    assert sum(1 for r in requests.iter(f"{SVG}rect") if r.get("class") == "bucket") == axis.buckets


def test_a_run_without_requests_draws_empty_charts_that_say_so() -> None:
    events = reset_run(cut_at=-0.6)  # killed while the stack was starting: header and stack.ready only
    run = RunData.from_events(events)
    timeline = run.timeline
    axis = axis_for(timeline)
    overlay = Overlay([], [])
    chart = stacked_chart("requests", "t", served_rate(timeline, axis), axis, overlay, empty="no requests were recorded")
    assert "no requests were recorded" in str(chart)
    assert "no request succeeded" in str(line_chart("latency", "t", latency(timeline, axis), axis, overlay,
                                                    empty="no request succeeded"))
    ET.fromstring(str(chart))


def test_labels_are_escaped_in_svg(run: RunData) -> None:
    from harness.report.series import Series

    axis = axis_for(run.timeline)
    nasty = Series('<script>alert("x")</script>', tuple([1.0] * axis.buckets), "#000")
    chart = str(stacked_chart("requests", "t", [nasty], axis, Overlay([], [])))
    assert "<script>" not in chart and "&lt;script&gt;" in chart


def test_json_error_bodies_are_shown_as_status_type_and_message() -> None:
    def failed(status: int, body: str) -> str:
        return error_label(Request(t=0, latency=0.1, kind="chat", status=status, error=f"http_{status // 100}xx",
                                   replica=None, body=body))

    cooldown = ('{"error":{"message":"No deployments available for selected model, Try again in 3.0 seconds. All '
                'deployments for selected model are in cooldown.","type":"all_deployments_in_cooldown","param":null,'
                '"code":"429"}}')
    assert failed(429, cooldown) == ("429 all_deployments_in_cooldown: No deployments available for selected model, "
                                     "Try again in 3…")
    anthropic = '{"type":"error","error":{"type":"rate_limit_error","message":"Number of requests has exceeded"}}'
    assert failed(429, anthropic) == "429 rate_limit_error: Number of requests has exceeded"
    # the journal keeps the first 300 characters: a body cut before its type still gives its message
    assert failed(429, '{"error":{"message":"Rate limit reached for gpt-4o') == "429 Rate limit reached for gpt-4o"
    cut = '{"error":{"message":"litellm.InternalServerError: Connection error.\\n\\nLiteLLM: model group \'m\' fa'
    assert failed(500, cut) == "500 litellm.InternalServerError: Connection error."
    assert failed(500, '{"error": {"code": "server_error"}}') == "500 server_error"
    html = "<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n</body></html>"
    assert failed(503, html) == "503 Service Unavailable No server is available to handle th…"
    assert failed(502, '{"detail": "not an error object"}') == '502 {"detail": "not an error object"}'
    assert "{" not in failed(429, cooldown) and '"' not in failed(500, cut)


def test_labels_of_faults_that_start_together_are_stacked_not_overprinted(run: RunData) -> None:
    assert stack_rows([(10, 100), (10, 80), (50, 90), (120, 200), (90, 95)]) == [0, 1, 2, 0, 1]
    axis = axis_for(run.timeline)
    window = run.timeline.faults[0]
    together = [window, replace(window, label="latency@chat[1]", replicas=("chat[1]",)),
                replace(window, label="limit_data@chat[2]", replicas=("chat[2]",), start=window.start + 0.5),
                replace(window, label="down@chat[2]", start=window.end + 1.0, end=window.end + 2.0)]
    svg = ET.fromstring(str(stacked_chart("requests", "t", served_rate(run.timeline, axis), axis,
                                          Overlay(together, ()))))
    texts = {g.get("data-fault"): g.find(f"{SVG}text") for g in svg.iter(f"{SVG}g") if g.get("class") == "fault"}
    boxes = {label: (float(t.get("x", 0)), float(t.get("y", 0)), label_width(label)) for label, t in texts.items()
             if t is not None}
    assert len(boxes) == 4
    for a, (xa, ya, wa) in boxes.items():
        for b, (xb, yb, wb) in boxes.items():
            if a < b and ya == yb:
                assert xa + wa <= xb or xb + wb <= xa, f"{a} and {b} overprint"
    assert len({y for _, y, _ in boxes.values()}) == 3  # the three that start within 0.5s take a row each
    assert boxes["down@chat[2]"][1] == boxes["reset_peer@chat[0]"][1]  # a later one reuses the first row
