"""no_traffic_to counts every try a retrying gateway made at a replica, on the real stack.

The case of issue 14: with retries on, Envoy ejected and readmitted a failing replica again and
again, each readmission cost a few tries that were retried elsewhere, and the client, which sees
only the last try, never saw the replica. The verdict counted client requests and said "no
request reached chat[0]". Here the same story runs for real and the verdict must fail, naming
the tries; a second run takes chat[0]'s Toxiproxy proxy down (connections refused), where the fake
sees nothing and only Envoy's log of each try tells. (Toxiproxy's reset_peer is no such case: the
request reaches the fake, measured, and the answer is reset on its way back; nor is a timeout toxic on
its default downstream direction.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.expectations.no_traffic_to import after_host_set_lag
from harness.journal import read_journal
from harness.timeline import build_timeline

from .conftest import chaosgate, require_components

# Outlier detection ejects chat[0] after 2 failed tries and readmits it after base_ejection_time (1s, then
# 2s, 3s: Envoy multiplies it by the number of ejections); each readmission costs tries, which the retry
# policy sends to another replica (previous_hosts), so every client request ends on chat[1] or chat[2].
SCENARIO = """
name: {name}
seed: 3
gateway:
  kind: envoy
  health_check: null
  outlier_detection: {{consecutive_5xx: 2, interval: 500ms, base_ejection_time: 1s, max_ejection_percent: 50}}
  panic_threshold: 0
  request_timeout: 5s
  retries: {{num_retries: 2, retry_on: [{retry_on}]}}
upstreams:
  - {{name: chat, kind: openai, replicas: 3}}
load: {{users: 4, spawn_rate: 4, duration: 12s, wait: 50ms, mix: {{chat: 1.0}}}}
faults:
  - {fault}
expect:
  - {{kind: upstream_unhealthy, target: "chat[0]", within: 2s}}
  - {{kind: no_traffic_to, target: "chat[0]", window: after_detection}}
"""


def run(tmp_path: Path, name: str, retry_on: str, fault: str) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    """Run the scenario with the CLI; the no_traffic_to verdict, the journal's events and the CLI's output."""
    require_components()
    path = tmp_path / f"{name}.yaml"
    path.write_text(SCENARIO.format(name=name, retry_on=retry_on, fault=fault))
    result = chaosgate("run", str(path), "--out", str(tmp_path / "out"), "--quiet", timeout=150)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output  # an expectation failed, nothing else went wrong
    assert "Traceback" not in output
    summary = json.loads((tmp_path / "out" / name / "summary.json").read_text())
    verdicts = {v["kind"]: v for v in summary["expectations"]}
    assert verdicts["upstream_unhealthy"]["passed"], verdicts["upstream_unhealthy"]["detail"]
    return verdicts["no_traffic_to"], read_journal(tmp_path / "out" / name / "journal.jsonl"), result.stdout


def window_of(verdict: dict[str, Any], events: list[dict[str, Any]]) -> tuple[float, float]:
    """The after_detection window the verdict judged, from the journal (seconds since the load started)."""
    timeline = build_timeline(events)
    fault = timeline.faults[0]
    start = timeline.first_unhealthy("chat[0]", fault.start)
    assert start is not None
    return start, fault.end


@pytest.mark.integration
def test_retried_tries_at_an_ejected_and_readmitted_replica_fail_no_traffic_to(tmp_path: Path) -> None:
    verdict, events, stdout = run(tmp_path, "retried-500", "5xx",
                                  '{kind: llm_fault, target: "chat[0]", mode: error_status, status: 500, at: 3s, for: 7s}')
    timeline = build_timeline(events)
    start, end = window_of(verdict, events)
    # What the old verdict counted: no client request in the window was served by or routed to chat[0] ...
    assert [r for r in timeline.requests_between(start, end) if r.reached({"chat[0]"})] == []
    # ... while chat[0]'s own process saw tries of client requests arrive, each one retried elsewhere. A try
    # counts by when Envoy sent it (its own log of each try): the try that got chat[0] ejected can arrive a
    # fraction of a millisecond after Envoy's stamp of the ejection (whole milliseconds), yet was sent before.
    sent_at = {(a.request_id, a.replica): a.t for a in timeline.attempts if a.source == "gateway"}
    seen = [a for a in timeline.attempts if a.source == "replica" and a.replica == "chat[0]" and a.client
            and start <= sent_at.get((a.request_id, a.replica), a.t) < end]
    assert seen, "Envoy readmitted chat[0] during the fault and tried it again"
    assert len({h.t for h in timeline.health["chat[0]"] if h.healthy and start < h.t < end}) >= 1, \
        "chat[0] was readmitted at least once inside the window"
    assert not verdict["passed"]
    assert verdict["measured_value"] == max(len(seen), verdict["measured_value"]) >= len(seen)
    assert f"{len(seen)} tries seen arriving by chat[0]'s own process" in verdict["detail"]
    assert "0 client requests served by or routed to chat[0]" in verdict["detail"]
    assert "were answered by another replica after a try at chat[0]" in verdict["detail"]
    assert f"e.g. request {seen[0].request_id} tried at chat[0]" in verdict["detail"]
    assert "attempts reached chat[0] in the window" in stdout


@pytest.mark.integration
def test_tries_refused_before_reaching_the_replica_are_counted_from_envoys_log(tmp_path: Path) -> None:
    verdict, events, _ = run(tmp_path, "retried-refused", "connect-failure, reset",
                             '{kind: down, target: "chat[0]", at: 3s, for: 7s}')
    timeline = build_timeline(events)
    start, end = window_of(verdict, events)
    # counted from HOST_SET_LAG after Envoy's stamp, as the verdict counts (a try sent in that moment is named only)
    in_window = [a for a in timeline.attempts if a.replica == "chat[0]" and after_host_set_lag(start, end) <= a.t < end]
    sent = [a for a in in_window if a.source == "gateway"]
    seen = [a for a in in_window if a.source == "replica" and a.client]
    assert sent and seen == [], "Toxiproxy refused every try before it reached chat[0]'s process"
    assert not verdict["passed"] and verdict["measured_value"] >= len(sent)
    assert f"0 tries seen arriving by chat[0]'s own process (retries included); {len(sent)} tries the gateway " \
           f"logged as sent to it (envoy-upstream.jsonl; {len(sent)} of them never reached its process" in verdict["detail"]
    assert all(a.flags == "UF" for a in sent), "Envoy's words for a connection that failed: UF"
