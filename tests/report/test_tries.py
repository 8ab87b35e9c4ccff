"""Beside a no_traffic_to verdict the report shows the tries that reached its target in its window: how many,
and the first few with their time and request id (harness/report/tries.py)."""

from __future__ import annotations

from typing import Any

from harness.report.data import RunData
from harness.report.html import render_run, verdict_tries

from .journals import SCENARIO, T0, reset_run

# The synthetic run's third expectation: no_traffic_to chat[0] over the whole fault (5s to 13s), which fails.
NO_TRAFFIC = 2


def with_attempts(events: list[dict[str, Any]], tries: list[tuple[float, str, str | None]],
                  gateway: str | None = "envoy-upstream.jsonl") -> list[dict[str, Any]]:
    """The run with attempt logs kept, and these tries (seconds since the load started, source, request id)."""
    out = []
    for event in events:
        if event["type"] == "stack.ready":
            event = {**event, "attempt_logs": {"replica": True, "gateway": gateway, "gateway_kind": "envoy"}}
        out.append(event)
    for t, source, request_id in tries:
        attempt: dict[str, Any] = {"type": "attempt", "ts": T0 + t, "source": source, "replica": "chat[0]",
                                   "request_id": request_id}
        if source == "gateway":
            attempt.update(upstream="127.0.0.1:41000", status=503, flags="UC")
        out.append(attempt)
    return sorted(out, key=lambda e: e["ts"])


def test_the_tries_the_gateway_logged_are_counted_and_the_first_few_named() -> None:
    tries = [(5.0 + 0.1 * i, "gateway", f"ab-{i}") for i in range(8)]
    tries += [(5.05, "replica", None)]  # a health check: not a try of the load
    run = RunData.from_events(with_attempts(reset_run(), tries))
    shown = verdict_tries(run)[NO_TRAFFIC]
    assert shown is not None and (shown.target, shown.start, shown.end) == ("chat[0]", 5.0, 13.0)
    # the last tries of the client requests routed to chat[0] outnumber the gateway's log here: the count is theirs
    routed = sum(1 for r in run.timeline.requests_between(5.0, 13.0) if r.reached({"chat[0]"}))
    assert shown.count == max(routed, 8) and shown.unit == "tries"
    assert [t.request_id for t in shown.first] == ["ab-0", "ab-1", "ab-2", "ab-3", "ab-4"]
    assert shown.first[1].text(shown.start) == "5.100s (+0.100s): request ab-1 at chat[0], seen by the gateway log, 503 UC"
    html = render_run(run)
    assert f'data-tries="{shown.count}">{shown.count} tries reached chat[0] between 5.000s and 13.000s; the first 5:' in html
    assert "<li>5.100s (+0.100s): request ab-1 at chat[0], seen by the gateway log, 503 UC</li>" in html
    assert f'</ol><p class="more">and {shown.count - 5} more</p>' in html
    assert html.count("data-tries=") == 1  # beside the no_traffic_to verdict only


def test_tries_seen_by_the_replica_when_the_gateway_logs_only_the_last_try() -> None:
    scenario = SCENARIO.replace("window: fault}", "window: {from: 14s, to: 16s}}")
    tries = [(14.5, "replica", "cd-1"), (14.2, "replica", "cd-0")]
    run = RunData.from_events(with_attempts(reset_run(scenario=scenario), tries, gateway=None))
    shown = verdict_tries(run)[NO_TRAFFIC]
    assert shown is not None and [t.request_id for t in shown.first][:2] == ["cd-0", "cd-1"]
    assert shown.first[0].source == "replica" and shown.more == shown.count - len(shown.first)


def test_no_try_in_the_window_says_so() -> None:
    scenario = SCENARIO.replace("window: fault}", "window: {from: 8s, to: 12s}}")
    run = RunData.from_events(with_attempts(reset_run(detect_after=1.0, scenario=scenario), []))
    shown = verdict_tries(run)[NO_TRAFFIC]
    assert shown is not None and shown.count == 0 and shown.first == []
    assert 'data-tries="0">No try reached chat[0] between 8.000s and 12.000s.</div>' in render_run(run)


def test_a_journal_without_attempt_logs_lists_the_last_tries() -> None:
    run = RunData.from_events(reset_run())
    shown = verdict_tries(run)[NO_TRAFFIC]
    assert shown is not None and shown.unit == "requests (last tries only)" and shown.count > 5
    assert shown.first[0].source == "client" and shown.first[0].outcome == "503"
    assert all(t.replica == "chat[0]" for t in shown.first)
