"""The expectations that prove a fallback, judged on real runs (tests/integration/fallback/): the LiteLLM
proxy started from a file whose chat model group (OpenAI-shaped fakes) falls back to a claude group (an
Anthropic-shaped fake) while every chat replica answers 429 with retry-after, and Envoy passing on streams
a replica cuts, then answering 503 itself while every replica is down. Each run's load is 9-10 s; LiteLLM's
proxy takes 8-25 s to import on a busy 2-core machine.

What the runs measured (LiteLLM 1.108.7, Envoy 1.40): LiteLLM never cools down the lone deployment of a group
on a 429 (it does with two deployments, for as long as the answer's retry-after says), so a one-deployment
group that falls back sends every request to the rate-limited replica first; Envoy passes a cut stream on
(the client gets it cut, its tokens wasted) and its own 503s carry no Retry-After.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.journal import read_journal
from tests.integration.conftest import chaosgate, processes_of_run, require_components

HERE = Path(__file__).resolve().parent / "fallback"
STARTUP = 90.0  # LitellmGateway.startup_timeout


def run(name: str, out: Path) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Run ``HERE/<name>.yaml``: its verdicts by kind (the first of each kind) and its journal."""
    result = chaosgate("run", str(HERE / f"{name}.yaml"), "--out", str(out), "--quiet", timeout=9 + STARTUP + 60)
    run_dir = out / name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["complete"], result.stdout + result.stderr
    assert processes_of_run(run_dir) == [], "the stack was torn down"
    verdicts: dict[str, dict[str, Any]] = {}
    for verdict in summary["expectations"]:
        verdicts.setdefault(verdict["kind"], verdict)
    return verdicts, read_journal(run_dir / "journal.jsonl")


def of_type(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


@pytest.mark.integration
def test_a_lone_deployment_falls_back_but_its_retry_after_is_not_honoured(tmp_path: Path) -> None:
    require_components("litellm")
    verdicts, events = run("rate-limited-fallback", tmp_path / "out")
    answers = of_type(events, "attempt.answer")
    limited = [a for a in answers if a["replica"] == "chat[0]" and a["status"] == 429]
    assert limited and all(a["retry_after"] == 3.0 for a in limited)  # retry-after-ms 3000, as the fake sent it
    claude = [a for a in answers if a["replica"] == "claude[0]" and a.get("request_id")]
    assert claude and all(a["status"] == 200 and a["tokens"] == 4 for a in claude)  # whole answers, 4 tokens each
    summary = json.loads((tmp_path / "out" / "rate-limited-fallback" / "summary.json").read_text())
    by_replica, by_model = [v for v in summary["expectations"] if v["kind"] == "served_by"]
    # the fallback served: its replica's header, and the model its answers named through LiteLLM's translation
    assert by_replica["passed"] and by_replica["measured_value"] >= 0.9, by_replica
    assert by_model["passed"] and by_model["measured_value"] >= 0.9, by_model
    # LiteLLM does not cool down the lone deployment of a group on a 429: every request meets chat[0] first
    honoured = verdicts["retry_after_honoured"]
    assert not honoured["passed"] and honoured["measured_value"] > 0, honoured
    assert honoured["detail"].startswith(f"{len(limited)} answers of chat[*] asked to wait (3s; statuses 429)")
    assert "reached chat[0]" in honoured["detail"] and "after its 429 asked for 3s" in honoured["detail"]
    wasted = verdicts["tokens_wasted"]  # a 429 generates nothing, and the fallback's answers reached their clients
    assert wasted["passed"] and wasted["measured"] == "0 tokens", wasted
    # the tokens of the journalled client requests (a request still in flight when the load ended is not one)
    journalled = {r["id"] for r in of_type(events, "request")}
    generated = sum(a["tokens"] for a in answers if a.get("request_id") in journalled)
    assert f"of the {generated} tokens generated" in wasted["detail"], wasted


@pytest.mark.integration
def test_two_deployments_cool_down_for_as_long_as_the_retry_after_says(tmp_path: Path) -> None:
    require_components("litellm")
    verdicts, events = run("rate-limited-cooldown", tmp_path / "out")
    limited = [a for a in of_type(events, "attempt.answer") if a["status"] == 429]
    assert {a["replica"] for a in limited} == {"chat[0]", "chat[1]"}
    honoured = verdicts["retry_after_honoured"]
    assert honoured["passed"] and honoured["measured"] == "0 early tries", honoured
    assert honoured["detail"].startswith(f"{len(limited)} answers of chat[*] asked to wait (3s; statuses 429)")
    assert verdicts["served_by"]["passed"], verdicts["served_by"]


@pytest.mark.integration
def test_cut_streams_waste_tokens_and_envoys_own_503_says_nothing_of_when_to_come_back(tmp_path: Path) -> None:
    require_components()
    verdicts, events = run("cut-streams", tmp_path / "out")
    cut = [r for r in of_type(events, "request") if r["error"] == "stream_incomplete"]
    assert cut and all(r["replica"] == "chat[0]" for r in cut)
    cut_answers = [a for a in of_type(events, "attempt.answer") if a.get("request_id") in {r["id"] for r in cut}]
    assert len(cut_answers) == len(cut) and all(a["tokens"] == 2 and a["status"] == 200 for a in cut_answers)
    # wasted: every token generated for a request that failed: 2 per cut stream, plus any stream the `down` fault
    # cut on its way (counted here from the fakes' answers, on their own)
    failed = {r["id"] for r in of_type(events, "request") if r["error"]}
    generated_for_failed = sum(a["tokens"] for a in of_type(events, "attempt.answer") if a.get("request_id") in failed)
    wasted = verdicts["tokens_wasted"]
    assert not wasted["passed"] and wasted["measured_value"] == generated_for_failed >= 2 * len(cut), wasted
    own = [r for r in of_type(events, "request") if r["status"] == 503 and r["replica"] is None]
    assert own and not any("retry_after" in r or "retry_after_ms" in r for r in own)
    retry_after = verdicts["gateway_retry_after"]
    assert not retry_after["passed"] and retry_after["measured"] == f"0 of {len(own)}", retry_after
