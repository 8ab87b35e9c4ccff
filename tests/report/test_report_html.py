"""The HTML report of one run, rendered from synthetic journals: content, self-containment, incompleteness."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from harness.catalogue import CAUSES
from harness.report.advice import advise
from harness.report.data import RunData
from harness.report.html import render_run

from .journals import EXPECTED_FAILURES, GATEWAY_CONFIG, SCENARIO, reset_run


class _Resources(HTMLParser):
    """Every attribute that would make a browser fetch something."""

    def __init__(self) -> None:
        super().__init__()
        self.fetches: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "srcset", "data", "poster") or (tag == "link" and name == "href"):
                self.fetches.append(f"{tag} {name}={value}")
            if name == "href" and value and not value.startswith("#"):
                self.fetches.append(f"{tag} href={value}")


def test_report_is_self_contained() -> None:
    html = render_run(RunData.from_events(reset_run()))
    parser = _Resources()
    parser.feed(html)
    assert parser.fetches == []
    assert "url(" not in html and "@import" not in html
    assert parser.tags.count("svg") == 4 and parser.tags.count("style") == 1


def test_header_names_the_run_and_how_to_reproduce_it() -> None:
    html = render_run(RunData.from_events(reset_run()))
    assert "<title>synthetic-reset: FAILED · chaosgate report</title>" in html
    assert 'data-status="FAILED"' in html
    for fact in ("envoy 1.40.0", "local", "2026-09-21", "20.0s of load, stack ready in 0.61s", "1200, of which 30 failed",
                 "scenarios/synthetic-reset.yaml", "One of three replicas resets every connection",
                 "chaosgate run scenarios/synthetic-reset.yaml --runtime local --out reports"):
        assert fact in html, fact


def test_verdict_table_has_bound_measured_and_an_explanation_per_expectation() -> None:
    run = RunData.from_events(reset_run())
    html = render_run(run)
    rows = re.findall(r'<tr class="(pass|fail)" data-kind="([a-z_]+)">(.*?)</tr>', html, re.S)
    assert [(state, kind) for state, kind, _ in rows] == [
        ("pass", "error_rate"), ("fail", "upstream_unhealthy"), ("fail", "no_traffic_to"), ("pass", "upstream_healthy")]
    failed = dict((kind, body) for state, kind, body in rows if state == "fail")
    assert set(failed) == set(EXPECTED_FAILURES)
    assert "≤ 1s" in failed["upstream_unhealthy"] and "1.500s" in failed["upstream_unhealthy"]
    assert "chat[0] was marked unhealthy 1.500s after reset_peer@chat[0] began; bound 1s" in failed["upstream_unhealthy"]
    assert "Not met: measured 30 requests (last tries only) where the bound is 0 attempts." in failed["no_traffic_to"]
    assert "Verdicts: 2 of 4 expectations held" in html


def test_timeline_lists_faults_with_detection_and_recovery() -> None:
    html = render_run(RunData.from_events(reset_run(detect_after=1.25, recover_after=1.75)))
    row = re.search(r'<tr data-fault="reset_peer@chat\[0\]">(.*?)</tr>', html, re.S)
    assert row is not None
    assert "5.00s – 13.00s" in row.group(1) and "1.250s" in row.group(1) and "1.750s" in row.group(1)
    assert "reset_peer@chat[0]: detected at 6.25s, 1.250s after the fault began" in html
    for name in ("requests", "errors", "latency", "health"):
        assert f'id="chart-{name}"' in html and f'data-chart="{name}"' in html


def test_configuration_and_scenario_file_are_included_collapsed() -> None:
    html = render_run(RunData.from_events(reset_run()))
    config = re.search(r'<details class="gateway-config">(.*?)</details>', html, re.S)
    scenario = re.search(r'<details class="scenario-file">(.*?)</details>', html, re.S)
    assert config and scenario
    assert "health_checks:" in config.group(1) and GATEWAY_CONFIG.splitlines()[0] in config.group(1)
    assert "# A synthetic replica-reset run for the report tests." in scenario.group(1)
    assert "<details open" not in html


def test_what_to_look_at_next_covers_failures_and_faults_with_measurements() -> None:
    run = RunData.from_events(reset_run())
    items = advise(run)
    assert [item.title.split(":")[0] for item in items] == [
        "upstream_unhealthy failed", "no_traffic_to failed", "Injected reset_peer@chat[0]"]
    fault = items[-1]
    assert not fault.failed and [c.name for c in fault.causes] == ["connection_reset", "connection_closed"]
    assert any("marked chat[0] unhealthy 1.500s after it began" in line for line in fault.measured)
    assert any("30 × 503 upstream reset: connection termination" in line and "30 to chat[0]" in line
               for line in fault.measured)
    traffic = items[1]
    assert any("Between 5.00s and 13.00s, 30 of 480 requests failed" in line for line in traffic.measured)
    html = render_run(run)
    assert html.count('<article class="advice failed">') == 2 and html.count('<article class="advice fault">') == 1
    assert "How to confirm" in html and "How to fix" in html
    assert '<code class="cause-name">connection_reset</code>' in html and CAUSES["connection_reset"].row in html


def test_failed_baseline_points_at_the_stack_not_the_gateways_reaction() -> None:
    scenario = SCENARIO.replace("window: baseline, max: 0.0", "window: baseline, max: 0.0}\n  - {kind: error_rate, window: run, max: 0.0")
    events = reset_run(scenario=scenario)
    for e in events:  # a broken stack: requests fail from the start
        if e["type"] == "request" and e["ts"] - events[3]["ts"] < 2:
            e.update(status=502, error="http_5xx", body="protocol error", replica=None)
    items = advise(RunData.from_events(events))
    baseline = next(i for i in items if i.title.startswith("error_rate failed: at most 0.00% of requests fail before"))
    assert {c.category for c in baseline.causes} == {"Gateway configuration", "Protocol and API"}


def test_a_killed_run_renders_as_incomplete() -> None:
    run = RunData.from_events(reset_run(cut_at=9.0))
    assert run.status == "INCOMPLETE" and run.outcome == "killed"
    html = " ".join(render_run(run).split())
    assert 'data-incomplete="true"' in html and "killed or crashed" in html
    assert "recorded up to 9.00s after the load started" in html
    assert "Not met: it never happened before the fault or the run ended" in html  # upstream_healthy
    assert html.count('data-chart="') == 4


def test_a_run_that_stopped_on_an_error_says_why() -> None:
    events = [e for e in reset_run(cut_at=-0.7)]
    events.append({"type": "run.finished", "ts": events[-1]["ts"] + 0.1, "outcome": "failed",
                   "error": "chat[0] exited with status 1 while starting"})
    run = RunData.from_events(events)
    html = render_run(run)
    assert run.status == "INCOMPLETE"
    assert "The run stopped on an error: chat[0] exited with status 1 while starting" in html
    assert "no requests were recorded" in html and "The journal has no gateway configuration" in html


def test_text_from_the_journal_is_escaped() -> None:
    scenario = SCENARIO.replace("two expectations are built to fail.", "<img src=x onerror=alert(1)>")
    html = render_run(RunData.from_events(reset_run(scenario=scenario)))
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_a_fake_servers_fault_mode_picks_the_causes_of_that_mode() -> None:
    events = reset_run()
    for e in events:
        if e["type"] in ("fault.started", "fault.cleared"):
            e.update(fault="llm_fault:health_fail@chat[0]", kind="llm_fault", params={"mode": "health_fail"})
    item = advise(RunData.from_events(events))[-1]
    assert item.title.startswith("Injected llm_fault:health_fail@chat[0]")
    assert [c.name for c in item.causes] == ["health_check_failing", "inference_failing"]
    for e in events:
        if e["type"] in ("fault.started", "fault.cleared"):
            e.update(kind="brand_new_fault", params={})
    item = advise(RunData.from_events(events))[-1]
    assert any("no entry for fault kind 'brand_new_fault'" in line for line in item.measured)
