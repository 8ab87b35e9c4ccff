"""The load's anthropic persona: the real Locust load process (harness/load/worker.py), its messages
sent through the official anthropic client straight to the fake Anthropic server, and every request
journalled with its start, latency, status, error kind and the replica that served it."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from fakes.anthropic import create_apps
from fakes.llm import ReplicaConfig
from harness.load.config import LoadConfig

from .conftest import ROOT, StartFake


def run_load(url: str, mix: dict[str, float], duration: float = 1.5, request_timeout: float = 5.0) -> list[dict[str, Any]]:
    """Run the load process against ``url`` and return its request records."""
    config = LoadConfig(host="", base_path="", users=2, spawn_rate=10, duration=duration, mix=mix, wait=0.05,
                        max_tokens=4, request_timeout=request_timeout, seed=3, anthropic_path="")
    child = subprocess.Popen([sys.executable, "-m", "harness.load.worker", config.model_dump_json()], cwd=ROOT,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdin is not None
    assert json.loads(child.stdout.readline()) == {"event": "ready"}
    child.stdin.write(json.dumps({"host": url}) + "\n")
    child.stdin.flush()
    try:
        out, err = child.communicate(timeout=duration + request_timeout + 20)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
        pytest.fail(f"the load process did not end: {err[-2000:]}")
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines and lines[-1]["event"] == "done", err[-2000:]
    return [line for line in lines if line["event"] == "request"]


def test_the_persona_sends_plain_and_streamed_messages(start_fake: StartFake) -> None:
    fake = start_fake(create_apps(ReplicaConfig(name="claude[0]", seed=7, ttft_ms=5, tokens_per_s=2000)))
    records = run_load(fake.url, {"anthropic": 1, "anthropic_stream": 1})
    kinds = {record["kind"] for record in records}
    assert kinds == {"anthropic", "anthropic_stream"}
    for record in records:
        assert record["status"] == 200 and record["error"] is None and record["replica"] == "claude[0]", record.get("body")
        assert record["latency"] > 0 and record["ts"] > 0 and record["id"]
    streamed = [r for r in records if r["kind"] == "anthropic_stream"]
    assert all(0 < r["ttft"] <= r["latency"] for r in streamed)
    assert all(r["bytes"] > 0 for r in records if r["kind"] == "anthropic")
    # Each record is a request the fake served; at the end each of the 2 users may have one in flight, unrecorded.
    assert len(records) <= int(str(fake.stats()["requests"])) <= len(records) + 2


@pytest.mark.parametrize(("mode", "kind", "status", "error", "body"), [
    ({"mode": "anthropic_error"}, "anthropic", 529, "http_5xx", "overloaded_error"),
    ({"mode": "anthropic_error", "error": "rate_limit_error"}, "anthropic", 429, "http_4xx", "rate_limit_error"),
    ({"mode": "midstream_error", "after_tokens": 1}, "anthropic_stream", 200, "stream_incomplete", "overloaded_error"),
    ({"mode": "truncate_stream", "after_tokens": 1}, "anthropic_stream", 200, "stream_incomplete", "message_stop"),
])
def test_the_persona_journals_provider_errors(start_fake: StartFake, mode: dict[str, object], kind: str, status: int,
                                              error: str, body: str) -> None:
    fake = start_fake(create_apps(ReplicaConfig(name="claude[1]", ttft_ms=1, tokens_per_s=5000)))
    fake.set_fault(mode)
    records = run_load(fake.url, {kind: 1}, duration=1.0)
    assert records
    for record in records:
        assert (record["status"], record["error"], record["replica"]) == (status, error, "claude[1]")
        assert body in record["body"]


def test_a_stream_of_pings_ends_at_the_request_timeout(start_fake: StartFake) -> None:
    fake = start_fake(create_apps(ReplicaConfig(name="claude[2]", ttft_ms=1, tokens_per_s=5000)))
    fake.set_fault({"mode": "keepalive_only", "interval": "50ms"})
    records = run_load(fake.url, {"anthropic_stream": 1}, duration=1.5, request_timeout=0.5)
    assert records
    for record in records:
        assert (record["status"], record["error"], record["replica"]) == (200, "timeout", "claude[2]")
        assert 0.5 <= record["latency"] < 2.0 and "ttft" not in record  # the pings alone would go on forever
