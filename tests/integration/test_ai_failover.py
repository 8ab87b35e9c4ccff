"""The AI-failover scenarios (scenarios/ai/) compared on the LiteLLM proxy and Envoy, in one `chaosgate compare` run.

Each scenario must pass on every gateway that can run it (the common expectations and those scoped to it with
`gateways:`, which encode what it was measured to do: docs/ai-failover.md), and a gateway that cannot is listed
as not run with its reason (Envoy translates no provider's API into another's). Then, per scenario, what the
gateway did in its own words: the configuration rendered for 429s, the answers the clients got.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.journal import read_journal
from harness.scenario import load_scenario

from .conftest import ROOT, chaosgate, processes_of_run, require_components

SUITE = sorted((ROOT / "scenarios" / "ai").glob("*.yaml"))
GATEWAYS = ["litellm", "envoy"]
START_UP_ALLOWANCE = 60  # per run: the LiteLLM proxy takes 8-25 s to import on a busy machine
# What each gateway can run: Envoy refuses a fallback pool of another kind (openai -> anthropic).
NOT_RUN = {("provider-outage-fallback", "envoy"), ("overloaded-mid-stream", "envoy")}

Events = list[dict[str, Any]]


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `chaosgate compare scenarios/ai/ --gateways litellm,envoy` for every test of this file."""
    require_components(*GATEWAYS)
    out = tmp_path_factory.mktemp("ai")
    budget = sum(len(GATEWAYS) * (load_scenario(p).load.duration + START_UP_ALLOWANCE) for p in SUITE)
    result = chaosgate("compare", str(ROOT / "scenarios" / "ai"), "--gateways", ",".join(GATEWAYS), "--out", str(out),
                       "-q", timeout=budget)
    assert result.returncode == 2, result.stdout + result.stderr  # 2: a gateway could not run some scenario
    return out


def journal(out: Path, scenario: str, gateway: str) -> Events:
    return read_journal(out / scenario / gateway / scenario / "journal.jsonl")


def during(events: Events, label: str | None = None) -> Events:
    """The client requests that started while the (named, else first) fault was active."""
    start = next(e["ts"] for e in events if e["type"] == "fault.started" and label in (None, e["fault"]))
    end = next(e["ts"] for e in events if e["type"] == "fault.cleared" and label in (None, e["fault"]))
    return [e for e in events if e["type"] == "request" and start <= e["ts"] < end]


def config_of(events: Events) -> str:
    return str(next(e for e in events if e["type"] == "stack.ready")["gateway_config"])


@pytest.mark.integration
def test_every_scenario_passes_where_it_runs_and_is_refused_with_its_reason_elsewhere(compared: Path) -> None:
    index = json.loads((compared / "index.json").read_text())
    assert [s["scenario"] for s in index["scenarios"]] == [p.stem for p in SUITE] and not index["pending"]
    for path in SUITE:
        table = json.loads((compared / path.stem / "compare.json").read_text())
        rows = {row["gateway"]: row for row in table["gateways"]}
        assert list(rows) == GATEWAYS
        for gateway, row in rows.items():
            if (path.stem, gateway) in NOT_RUN:
                assert row["status"] == "NOT RUN" and "does not translate openai's API into anthropic's" in \
                    row["reason"], (path.stem, gateway, row)
                continue
            failed = [v for v in row["expectations"] if not v["passed"]]
            assert row["status"] == "PASSED" and not failed, (path.stem, gateway, row["reason"], failed)
            judged = [v["kind"] for v in row["expectations"]]
            assert judged == [e.kind for e in load_scenario(path, gateway).expect], (path.stem, gateway)
            assert processes_of_run(compared / path.stem / gateway / path.stem) == [], (path.stem, gateway)


@pytest.mark.integration
def test_what_each_gateway_does_with_a_429(compared: Path) -> None:
    # Envoy retries a 429 only through retriable-status-codes, rendered from the scenario; outlier detection never
    # counts one, so the rate-limited replicas keep their traffic and every Retry-After is ignored.
    events = journal(compared, "rate-limit-storm", "envoy")
    assert "retriable-status-codes" in config_of(events) and "retriable_status_codes" in config_of(events)
    assert not [e for e in events if e["type"] == "health" and not e["healthy"]]
    assert any(e["status"] == 429 for e in events if e["type"] == "attempt" and e.get("source") == "gateway")
    # LiteLLM cools each rate-limited deployment down for its Retry-After: chat[2] serves the fault alone
    events = journal(compared, "rate-limit-storm", "litellm")
    assert any("cooldown" in e["flags"] for e in events if e["type"] == "health" and not e["healthy"])
    # quota: Envoy retried it on the other chat replica and passed the second 429 on; spare got nothing
    events = journal(compared, "quota-exhausted", "envoy")
    answers = [e for e in during(events) if e["status"] == 429]
    assert answers and all("insufficient_quota" in e["body"] for e in answers)
    assert not [e for e in during(events) if e["replica"] == "spare[0]"]
    # LiteLLM fell back to spare, and retried the quota 429 first on some requests (up to 3 attempts)
    events = journal(compared, "quota-exhausted", "litellm")
    assert [e for e in during(events) if e["replica"] == "spare[0]" and e["status"] == 200]
    # every replica cooling down: LiteLLM's own 429 says when to come back; Envoy passes the replicas' 429 on
    events = journal(compared, "all-cooling-down", "litellm")
    own = [e for e in during(events) if e["status"] == 429 and "All deployments" in (e.get("body") or "")]
    assert own and all(e.get("retry_after") == "3" for e in own), own[:3]
    events = journal(compared, "all-cooling-down", "envoy")
    passed_on = [e for e in during(events) if e["status"] == 429]
    assert passed_on and all(e["replica"] and e.get("retry_after") == "3" for e in passed_on)


@pytest.mark.integration
def test_streams_stalled_or_broken_mid_way(compared: Path) -> None:
    # Envoy's route timeout resets the stalled stream after its headers; LiteLLM's stream_timeout fails it over
    stalled = {g: json.loads((compared / "stalled-first-token" / g / "stalled-first-token" / "summary.json")
                             .read_text()) for g in GATEWAYS}
    for gateway, summary in stalled.items():
        [verdict] = [v for v in summary["expectations"] if v["kind"] == "stall_detected"]
        assert verdict["passed"] and verdict["bound"].startswith("in ["), (gateway, verdict)
    envoy = [e for e in during(journal(compared, "stalled-first-token", "envoy")) if e["error"]]
    assert envoy and all(e["status"] == 200 and e["error"] in ("reset", "stream_incomplete") for e in envoy), envoy
    litellm = [e for e in during(journal(compared, "stalled-first-token", "litellm")) if e["error"]]
    assert all(e["status"] == 408 and "litellm.Timeout" in e["body"] for e in litellm), litellm
    # LiteLLM passes Anthropic's overloaded_error on inside the 200 it started, as an OpenAI error chunk
    events = journal(compared, "overloaded-mid-stream", "litellm")
    broken = [e for e in during(events, "overloaded") if e["error"]]
    assert broken and all(e["status"] == 200 and e["error"] == "stream_incomplete" and e["replica"] == "claude[0]"
                          and "AnthropicError - Overloaded" in (e.get("body") or "") for e in broken), broken
