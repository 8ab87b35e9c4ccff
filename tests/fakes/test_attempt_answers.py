"""The fakes' answer lines (fakes/identity.py): one per answered try, with its status, the Retry-After it sent
(in seconds, from retry-after-ms, whole seconds or an HTTP date), the tokens it generated and sent, the model;
then judged: the lines, read as harness/attempts.py journals them, decide tokens_wasted and retry_after_honoured."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from fakes import anthropic as claude_fake
from fakes import llm
from harness.attempts import replica_line
from harness.expectations import EXPECTATIONS
from harness.timeline import build_timeline

from .conftest import StartFake, wait_for

FAST: dict[str, Any] = {"ttft_ms": 1.0, "tokens_per_s": 5000.0}
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


def answer_lines(path: Path) -> list[dict[str, Any]]:
    return [line for line in map(json.loads, path.read_text().splitlines()) if line.get("type") == "answer"] \
        if path.exists() else []


def chat(url: str, request_id: str, **body: Any) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", headers={"x-chaosgate-request": request_id}, timeout=5,
                      json={"model": "gpt-fallback", "messages": MESSAGES, "max_tokens": 6, **body})


def test_the_llm_fake_writes_an_answer_line_per_answered_try(start_fake: StartFake, tmp_path: Path) -> None:
    path = tmp_path / "chat-0.jsonl"
    fake = start_fake(llm.create_apps(llm.ReplicaConfig(name="chat[0]", **FAST), attempts_file=str(path)))
    assert chat(fake.url, "r-1").status_code == 200
    fake.set_fault({"mode": "openai_error", "error": "rate_limit_exceeded", "retry_after": "2500ms"})
    limited = chat(fake.url, "r-2")
    fake.set_fault({"mode": "openai_error", "error": "overloaded", "retry_after": "3s",
                    "retry_after_format": "http_date"})
    dated = chat(fake.url, "r-3")
    fake.set_fault({"mode": "openai_error", "error": "insufficient_quota"})
    assert chat(fake.url, "r-4").status_code == 429
    fake.set_fault({"mode": "truncate_stream", "after_tokens": 2})
    assert "[DONE]" not in chat(fake.url, "r-5", stream=True).text
    fake.clear_fault()
    assert httpx.get(f"{fake.url}/health").status_code == 200  # a health check: no answer line
    wait_for(lambda: len(answer_lines(path)) == 5, 5, "five answer lines")
    whole, rate_limited, overloaded, quota, cut = answer_lines(path)
    assert {k: v for k, v in whole.items() if k not in ("ts", "ended")} == {
        "type": "answer", "replica": "chat[0]", "path": "/v1/chat/completions", "request_id": "r-1", "status": 200,
        "retry_after": None, "retry_after_header": None, "retry_after_ms_header": None, "tokens": 6,
        "model": "gpt-fallback"}
    assert whole["ts"] <= whole["ended"]
    # retry-after-ms first (the OpenAI clients read it first), as the headers said
    assert (rate_limited["status"], rate_limited["retry_after"], rate_limited["retry_after_header"],
            rate_limited["retry_after_ms_header"], rate_limited["tokens"]) == (429, 2.5, "3", "2500", 0)
    assert limited.headers["retry-after-ms"] == "2500"
    # an HTTP date: the seconds from when the answer went out to that date (rounded up to a whole second)
    assert overloaded["retry_after_header"] == dated.headers["retry-after"]
    assert 3.0 <= overloaded["retry_after"] <= 4.0
    assert (quota["status"], quota["retry_after"]) == (429, None)  # insufficient_quota promises nothing
    assert (cut["status"], cut["tokens"]) == (200, 2)  # the stream cut after 2 of 6 tokens: 2 went out


def test_the_anthropic_fake_counts_what_a_stream_sent_before_its_error_event(start_fake: StartFake,
                                                                             tmp_path: Path) -> None:
    path = tmp_path / "claude-0.jsonl"
    fake = start_fake(claude_fake.create_apps(llm.ReplicaConfig(name="claude[0]", **FAST), attempts_file=str(path)))
    client = anthropic.Anthropic(base_url=fake.url, api_key="x", max_retries=0, timeout=5,
                                 default_headers={"x-chaosgate-request": "m-1"})
    assert client.messages.create(model=claude_fake.MODEL_ID, max_tokens=4, messages=MESSAGES).usage.output_tokens == 4
    fake.set_fault({"mode": "midstream_error", "after_tokens": 1})
    with pytest.raises(anthropic.APIStatusError):
        list(client.messages.create(model=claude_fake.MODEL_ID, max_tokens=4, messages=MESSAGES, stream=True))
    fake.set_fault({"mode": "anthropic_error", "error": "overloaded_error", "retry_after": "1s"})
    with pytest.raises(anthropic.InternalServerError):
        client.messages.create(model=claude_fake.MODEL_ID, max_tokens=4, messages=MESSAGES)
    fake.clear_fault()
    wait_for(lambda: len(answer_lines(path)) == 3, 5, "three answer lines")
    plain, broken, overloaded = answer_lines(path)
    assert (plain["status"], plain["tokens"], plain["model"]) == (200, 4, claude_fake.MODEL_ID)
    assert (broken["status"], broken["tokens"]) == (200, 1)
    assert (overloaded["status"], overloaded["retry_after"], overloaded["tokens"]) == (529, 1.0, 0)


def journal(lines: list[dict[str, Any]], requests: list[dict[str, Any]], t0: float) -> list[dict[str, Any]]:
    """A run's journal around the fakes' real lines, as the attempt collector journals them."""
    events: list[dict[str, Any]] = [
        {"type": "run.started", "ts": t0 - 2, "scenario": "t", "file": "x.yaml", "replicas": ["chat[0]", "chat[1]"],
         "text": "name: t\nupstreams:\n  - {name: chat, replicas: 2}\nload: {duration: 20s}\n"},
        {"type": "stack.ready", "ts": t0 - 1, "attempt_logs": {"replica": True}},
        {"type": "load.started", "ts": t0}, *requests]
    for line in lines:
        for event in replica_line(line):
            events.append({**event, "type": event.get("type", "attempt")})
    events.append({"type": "load.finished", "ts": time.time() + 1})
    return [events[0], *sorted(events[1:], key=lambda e: e["ts"])]


def test_the_answer_lines_are_judged(start_fake: StartFake, tmp_path: Path) -> None:
    """A gateway's part played by hand: a 429 asking 1 s from chat[0], then the same request retried at once
    on chat[0] (early: retry_after_honoured fails), then on chat[1]; a stream cut after 3 tokens (wasted)."""
    t0 = time.time()
    paths = {name: tmp_path / f"{name}.jsonl" for name in ("chat-0", "chat-1")}
    fakes = {name: start_fake(llm.create_apps(llm.ReplicaConfig(name=f"chat[{i}]", **FAST),
                                              attempts_file=str(paths[name])))
             for i, name in enumerate(paths)}
    zero, one = fakes["chat-0"], fakes["chat-1"]
    zero.set_fault({"mode": "openai_error", "error": "rate_limit_exceeded", "retry_after": "1s"})
    began = time.time()
    assert chat(zero.url, "a").status_code == 429
    assert chat(zero.url, "a").status_code == 429  # retried on the replica that asked for 1 s, at once
    assert chat(one.url, "a").status_code == 200
    served = time.time()
    one.set_fault({"mode": "truncate_stream", "after_tokens": 3})
    cut_began = time.time()
    assert "[DONE]" not in chat(one.url, "b", stream=True).text
    ended = time.time()
    wait_for(lambda: len(answer_lines(paths["chat-0"])) == 2 and len(answer_lines(paths["chat-1"])) == 2, 5,
             "the answers of both replicas")
    requests = [{"type": "request", "ts": began, "id": "a", "kind": "chat", "latency": served - began, "status": 200,
                 "error": None, "replica": "chat[1]"},
                {"type": "request", "ts": cut_began, "id": "b", "kind": "chat_stream", "latency": ended - cut_began,
                 "status": 200, "error": "stream_incomplete", "replica": "chat[1]"}]
    lines = [json.loads(line) for path in paths.values() for line in path.read_text().splitlines()]
    timeline = build_timeline(journal(lines, requests, t0))
    assert len(timeline.answers) == 4 and len([a for a in timeline.attempts if a.client]) == 4
    judge = {kind: EXPECTATIONS[kind].model_validate({"kind": kind, **params}).evaluate(timeline)
             for kind, params in (("tokens_wasted", {"max": 3}), ("retry_after_honoured", {"target": "chat[0]"}))}
    wasted, honoured = judge["tokens_wasted"], judge["retry_after_honoured"]
    assert wasted.passed is True and wasted.measured == "3 tokens", wasted.detail  # b's 3; a's 6 reached its client
    assert honoured.passed is False and honoured.measured == "1 early tries", honoured.detail
    assert "request a reached chat[0]" in honoured.detail and "after its 429 asked for 1s" in honoured.detail


def test_the_load_records_the_answers_model_and_the_retry_after_of_errors(start_fake: StartFake) -> None:
    """The real load process: each record names the model its answer named, and an error's retry-after headers."""
    from .test_anthropic_persona import run_load

    chat_fake = start_fake(llm.create_apps(llm.ReplicaConfig(name="chat[0]", **FAST)))
    served = run_load(chat_fake.url, {"chat": 1, "chat_stream": 1}, duration=1.0)
    assert {r["kind"] for r in served} == {"chat", "chat_stream"}
    assert all(r["model"] == "fake-model" and "retry_after" not in r for r in served), served[:2]
    chat_fake.set_fault({"mode": "openai_error", "error": "rate_limit_exceeded", "retry_after": "1500ms"})
    limited = run_load(chat_fake.url, {"chat": 1}, duration=0.5)
    assert limited and all((r["status"], r["retry_after"], r["retry_after_ms"]) == (429, "2", "1500") and
                           "model" not in r for r in limited), limited[:2]
    claude = start_fake(claude_fake.create_apps(llm.ReplicaConfig(name="claude[0]", **FAST)))
    messages = run_load(claude.url, {"anthropic": 1, "anthropic_stream": 1}, duration=1.0)
    assert {r["kind"] for r in messages} == {"anthropic", "anthropic_stream"}
    assert all(r["model"] == claude_fake.MODEL_ID for r in messages), messages[:2]
    claude.set_fault({"mode": "anthropic_error", "error": "overloaded_error", "retry_after": "3s"})
    overloaded = run_load(claude.url, {"anthropic": 1}, duration=0.5)
    assert overloaded and all((r["status"], r["retry_after"]) == (529, "3") and "retry_after_ms" not in r
                              for r in overloaded), overloaded[:2]
