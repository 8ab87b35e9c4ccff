"""The fakes' attempt log: one line per request reaching the data port, as it arrives, health checks marked."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from fakes import llm, mcp
from harness.gateways.envoy import mcp_initialize_request
from harness.mcp_check import check_mcp_server

from .conftest import StartFake, wait_for


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def arrivals(path: Path) -> list[dict[str, Any]]:
    """The lines written as requests arrived (the others are answers: tests/fakes/test_attempt_answers.py)."""
    return [line for line in lines(path) if line.get("type") != "answer"]


def answers(path: Path) -> list[dict[str, Any]]:
    return [line for line in lines(path) if line.get("type") == "answer"]


def test_the_llm_fake_logs_every_request_with_its_load_id_and_marks_health_checks(start_fake: StartFake,
                                                                                   tmp_path: Path) -> None:
    path = tmp_path / "chat-0.jsonl"
    fake = start_fake(llm.create_apps(llm.ReplicaConfig(name="chat[0]"), attempts_file=str(path)))
    before = time.time()
    body = {"model": llm.MODEL_ID, "messages": [{"role": "user", "content": "hi"}]}
    fake.set_fault({"mode": "error_status", "status": 503})  # a failed answer is an attempt all the same
    assert httpx.post(f"{fake.url}/v1/chat/completions", json=body, headers={"x-chaosgate-request": "r-1"}).status_code == 503
    fake.clear_fault()
    assert httpx.get(f"{fake.url}/health").status_code == 200
    assert httpx.get(f"{fake.url}/v1/models").status_code == 200
    # an arrival line per request; an answer line per answered request that is not a health check
    wait_for(lambda: len(arrivals(path)) == 3 and len(answers(path)) == 2, 5, "three arrivals, two answers")
    first, health, models = arrivals(path)
    failed, listed = answers(path)
    assert (failed["request_id"], failed["status"], failed["tokens"], listed["path"]) == \
        ("r-1", 503, 0, "/v1/models")
    assert before <= first["ts"] <= time.time()
    assert {k: v for k, v in first.items() if k != "ts"} == {
        "replica": "chat[0]", "method": "POST", "path": "/v1/chat/completions", "request_id": "r-1", "health": False}
    assert (health["path"], health["health"], health["request_id"]) == ("/health", True, None)
    assert (models["path"], models["health"]) == ("/v1/models", False)
    assert fake.stats()["requests"] == 2  # health checks are not requests


def test_the_llm_fake_logs_a_request_as_it_arrives_not_when_it_ends(start_fake: StartFake, tmp_path: Path) -> None:
    path = tmp_path / "chat-1.jsonl"
    fake = start_fake(llm.create_apps(llm.ReplicaConfig(name="chat[1]"), attempts_file=str(path)))
    fake.set_fault({"mode": "hang_before_headers"})
    try:
        httpx.post(f"{fake.url}/v1/chat/completions", timeout=0.5,
                   json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    except httpx.TimeoutException:
        pass
    # while the request still hangs (its answer line, a 499 to nobody, comes once the fake sees the client gone)
    assert [line["path"] for line in arrivals(path)] == ["/v1/chat/completions"]
    fake.clear_fault()


def test_the_mcp_fake_marks_the_gateways_health_check_initialize_and_keeps_the_steps_ids(
        start_fake: StartFake, tmp_path: Path) -> None:
    path = tmp_path / "tools-0.jsonl"
    fake = start_fake(mcp.create_apps(mcp.McpConfig(name="tools[0]"), attempts_file=str(path)))
    answer = httpx.post(f"{fake.url}/mcp", content=mcp_initialize_request("2025-11-25"),
                        headers={"content-type": "application/json", "accept": "application/json, text/event-stream"})
    assert answer.status_code == 200 and answer.json()["result"]["serverInfo"]  # the body reached the app intact
    outcomes = check_mcp_server(f"{fake.url}/mcp", headers={"x-chaosgate-request": "ignored"})
    assert all(o.ok for o in outcomes)
    logged = lines(path)
    assert logged[0]["health"] is True and logged[0]["request_id"] is None
    assert all(line["health"] is False for line in logged[1:]) and len(logged) > 3
    assert fake.stats()["requests"] == len(logged) - 1


def test_an_mcp_session_sends_one_request_id_per_step(start_fake: StartFake, tmp_path: Path) -> None:
    import asyncio

    from harness.mcp_check import mcp_session

    path = tmp_path / "tools-1.jsonl"
    fake = start_fake(mcp.create_apps(mcp.McpConfig(name="tools[1]"), attempts_file=str(path)))
    outcomes = asyncio.run(mcp_session(f"{fake.url}/mcp", timeout=5, tool_calls=2, request_id="mcp0-1"))
    assert [(o.step, o.request_id) for o in outcomes] == [
        ("initialize", "mcp0-1.0"), ("tools/list", "mcp0-1.1"), ("tools/call", "mcp0-1.2"), ("tools/call", "mcp0-1.3")]
    ids = [line["request_id"] for line in lines(path)]
    assert set(ids) == {"mcp0-1.0", "mcp0-1.1", "mcp0-1.2", "mcp0-1.3"}
    assert ids == sorted(ids)  # in the order of the steps
