"""Anthropic pools behind the real gateway: a stack started by the harness's local runtime (Envoy,
Toxiproxy, an openai pool and an anthropic pool of fakes/anthropic.py), driven by the official
anthropic client through Envoy's route, by the load's anthropic persona, and with the Anthropic
fake's provider errors switched through the harness's fault seam."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from harness.faults import FAULTS, Fault
from harness.journal import JournalWriter, read_journal
from harness.load.config import LoadConfig
from harness.load.generator import LoadGenerator
from harness.runtimes.base import Stack
from harness.runtimes.local import LocalRuntime
from harness.scenario import Scenario, parse_scenario

from .conftest import chaosgate

SCENARIO = """
name: anthropic-through-gateway
gateway:
  health_check: {interval: 1s, timeout: 500ms, no_traffic_interval: 1s}
upstreams:
  - {name: chat, kind: openai, replicas: 1, ttft: 5ms, tokens_per_s: 2000}
  - {name: claude, kind: anthropic, replicas: 2, ttft: 5ms, tokens_per_s: 2000}
load: {duration: 3s, users: 2, wait: 50ms, max_tokens: 4, request_timeout: 2s,
       mix: {anthropic: 1, anthropic_stream: 1}}
"""
MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]
CLAUDE = ("claude[0]", "claude[1]")


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return parse_scenario(SCENARIO, "inline.yaml")


@pytest.fixture(scope="module")
def stack(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    runtime = LocalRuntime()
    try:
        yield runtime.up(scenario, tmp_path_factory.mktemp("anthropic-through-gateway"))
    finally:
        runtime.down()


def client(stack: Stack) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=f"{stack.gateway.url}/claude", api_key="x", max_retries=0, timeout=10)


def fault(**fields: Any) -> Fault:
    return FAULTS[fields["kind"]].model_validate({"at": 0, "for": 1, **fields})


@pytest.mark.integration
def test_anthropic_client_through_the_gateway(stack: Stack) -> None:
    served = set()
    for _ in range(6):
        raw = client(stack).messages.with_raw_response.create(model="claude-fake", max_tokens=3, messages=MESSAGES)
        served.add(raw.headers["x-chaosgate-replica"])
        assert raw.headers["request-id"].startswith("req_")
        assert raw.parse().usage.output_tokens == 3
    assert served == set(CLAUDE)  # both replicas, behind Toxiproxy, through Envoy's route
    with client(stack).messages.stream(model="claude-fake", max_tokens=4, messages=MESSAGES) as stream:
        assert len("".join(stream.text_stream).split()) == 4
        assert stream.get_final_message().stop_reason == "max_tokens"


@pytest.mark.integration
def test_anthropic_fault_through_the_fault_seam(stack: Stack) -> None:
    overloaded = fault(kind="anthropic_fault", target="claude", mode="anthropic_error", retry_after="2s")
    for replica in CLAUDE:
        overloaded.inject(stack, replica)
    try:
        with pytest.raises(anthropic.OverloadedError) as raised:
            client(stack).messages.create(model="claude-fake", max_tokens=3, messages=MESSAGES)
        assert raised.value.status_code == 529 and raised.value.response.headers["retry-after"] == "2"
        assert raised.value.body == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"},
                                     "request_id": raised.value.response.headers["request-id"]}
    finally:
        for replica in CLAUDE:
            overloaded.clear(stack, replica)
    midstream = fault(kind="anthropic_fault", target="claude", mode="midstream_error", after_tokens=1)
    for replica in CLAUDE:
        midstream.inject(stack, replica)
    try:
        with pytest.raises(anthropic.APIStatusError) as stream_error:  # a 200, a delta, then the error event
            list(client(stack).messages.create(model="claude-fake", max_tokens=3, messages=MESSAGES, stream=True))
        assert stream_error.value.status_code == 200
    finally:
        for replica in CLAUDE:
            midstream.clear(stack, replica)
    assert client(stack).messages.create(model="claude-fake", max_tokens=1, messages=MESSAGES).content


@pytest.mark.integration
def test_the_anthropic_persona_through_the_gateway(stack: Stack, scenario: Scenario, tmp_path: Path) -> None:
    config = LoadConfig.for_scenario(scenario, stack.gateway.url)
    assert config.anthropic_path == "/claude"
    journal = JournalWriter(tmp_path / "journal.jsonl")
    journal.write("run.started", replicas=scenario.replicas, text="", file="inline.yaml")
    load = LoadGenerator(config, journal, tmp_path / "logs")
    load.start()
    began = time.monotonic()
    load.go()
    finished = load.wait(timeout=config.duration + config.request_timeout + 10)
    took = time.monotonic() - began
    journal.close()
    assert finished, (tmp_path / "logs" / "locust.log").read_text()
    requests = [e for e in read_journal(tmp_path / "journal.jsonl") if e["type"] == "request"]
    kinds = Counter(str(r["kind"]) for r in requests)
    assert set(kinds) == {"anthropic", "anthropic_stream"}
    assert all(r["status"] == 200 and r["error"] is None for r in requests), requests[:3]
    assert {r["replica"] for r in requests} == set(CLAUDE)
    assert all(float(str(r["ttft"])) > 0 for r in requests if r["kind"] == "anthropic_stream")
    assert took < 3 + 2 + 10


RUN_SCENARIO = """\
name: anthropic-overloaded
description: One of two Anthropic replicas answers 529 overloaded_error; Envoy retries it on the other.
gateway:
  kind: envoy
  health_check: {interval: 1s, timeout: 500ms, no_traffic_interval: 1s}
  retries: {num_retries: 2, retry_on: [5xx]}
upstreams:
  - {name: claude, kind: anthropic, replicas: 2, ttft: 5ms, tokens_per_s: 2000}
load: {users: 4, duration: 6s, wait: 50ms, max_tokens: 4, request_timeout: 2s,
       mix: {anthropic: 1, anthropic_stream: 1}}
faults:
  - {kind: anthropic_fault, mode: anthropic_error, error: overloaded_error, target: "claude[0]", at: 2s, for: 3s}
expect:
  - {kind: error_rate, window: baseline, max: 0.0}
  - {kind: error_rate, window: fault, max: 0.05}   # a retry may meet claude[0] again (round robin under load)
"""


@pytest.mark.integration
def test_a_run_with_an_anthropic_pool_and_its_fault(tmp_path: Path) -> None:
    """`chaosgate run` end to end: the anthropic personas through Envoy, a 529 on one replica, retried."""
    path = tmp_path / "anthropic-overloaded.yaml"
    path.write_text(RUN_SCENARIO)
    result = chaosgate("run", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stdout + result.stderr
    events = list(read_journal(tmp_path / "out" / "anthropic-overloaded" / "journal.jsonl"))
    (started,) = [e for e in events if e["type"] == "fault.started"]
    (cleared,) = [e for e in events if e["type"] == "fault.cleared"]
    begin, end = float(str(started["ts"])), float(str(cleared["ts"]))
    requests = [e for e in events if e["type"] == "request"]
    assert {str(r["kind"]) for r in requests} == {"anthropic", "anthropic_stream"}
    before = [r for r in requests if float(str(r["ts"])) < begin]
    assert before and all(r["error"] is None and r["status"] == 200 for r in before)
    during = [r for r in requests if begin + 0.2 < float(str(r["ts"])) < end - 0.2]
    served = [r for r in during if r["error"] is None]
    assert len(served) >= 0.95 * len(during) > 0 and all(r["replica"] == "claude[1]" for r in served)
    # What was not retried away is the provider's own answer, passed on: 529 overloaded_error from claude[0].
    assert all((r["status"], r["error"], r["replica"]) == (529, "http_5xx", "claude[0]") and
               "overloaded_error" in str(r["body"]) for r in during if r["error"] is not None)
    overloaded = [e for e in events if e["type"] == "attempt" and e.get("source") == "replica"
                  and e.get("replica") == "claude[0]" and e.get("path") == "/v1/messages"
                  and begin + 0.2 < float(str(e["ts"])) < end - 0.2]
    assert overloaded  # the attempts that met the fault reached claude[0]
