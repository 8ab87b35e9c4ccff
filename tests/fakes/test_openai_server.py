"""The fake OpenAI replica, driven by the official openai client and by raw httpx."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest

from fakes.openai_server import REPLICA_HEADER, ReplicaConfig

ROOT = Path(__file__).resolve().parents[2]
FAST = {"ttft_ms": 1.0, "tokens_per_s": 5000.0}
MESSAGES = [{"role": "user", "content": "Say something."}]

StartReplica = Callable[[ReplicaConfig], str]


def client_for(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="x", max_retries=0, timeout=5)


@pytest.fixture
def base_url(start_replica: StartReplica) -> str:
    return start_replica(ReplicaConfig(name="chat[0]", seed=7, **FAST))


def test_chat_completion_with_official_client(base_url: str) -> None:
    raw = client_for(base_url).chat.completions.with_raw_response.create(
        model="fake-model", messages=MESSAGES, max_tokens=5, temperature=0.2, user="ignored")
    assert raw.headers[REPLICA_HEADER] == "chat[0]"
    completion = raw.parse()
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == "fake-model"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.refusal is None
    assert len(choice.message.content.split()) == 5
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 5
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 5


def test_max_tokens_is_capped_by_replica(start_replica: StartReplica) -> None:
    url = start_replica(ReplicaConfig(name="r", max_tokens=3, **FAST))
    completion = client_for(url).chat.completions.create(
        model="m", messages=MESSAGES, max_completion_tokens=100)
    assert len(completion.choices[0].message.content.split()) == 3


def test_latency_is_simulated(start_replica: StartReplica) -> None:
    url = start_replica(ReplicaConfig(name="slow", ttft_ms=100, tokens_per_s=100, max_tokens=5))
    started = time.monotonic()
    client_for(url).chat.completions.create(model="m", messages=MESSAGES)
    assert time.monotonic() - started >= 0.1 + 5 / 100


def test_streaming_with_official_client(base_url: str) -> None:
    stream = client_for(base_url).chat.completions.create(
        model="fake-model", messages=MESSAGES, stream=True, max_tokens=6)
    chunks = list(stream)
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert len(text.split()) == 6
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(chunk.choices[0].finish_reason is None for chunk in chunks[:-1])


def test_streaming_include_usage(base_url: str) -> None:
    stream = client_for(base_url).chat.completions.create(
        model="fake-model", messages=MESSAGES, stream=True, max_tokens=4,
        stream_options={"include_usage": True})
    chunks = list(stream)
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None and last.usage.completion_tokens == 4
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_streaming_raw_frames(base_url: str) -> None:
    request = {"model": "m", "messages": MESSAGES, "stream": True, "max_tokens": 3,
               "stream_options": {"include_usage": True}}
    response = httpx.post(f"{base_url}/v1/chat/completions", json=request, timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert response.headers[REPLICA_HEADER] == "chat[0]"
    body = response.text
    assert body.endswith("data: [DONE]\n\n")
    frames = body.split("\n\n")[:-1]
    assert all(frame.startswith("data: ") for frame in frames)
    # role chunk + 3 tokens + finish chunk + usage chunk + [DONE]
    assert len(frames) == 1 + 3 + 1 + 1 + 1
    assert '"usage":null' in frames[0]


def test_health(base_url: str) -> None:
    response = httpx.get(f"{base_url}/health", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "replica": "chat[0]"}
    assert response.headers[REPLICA_HEADER] == "chat[0]"


def test_missing_messages_is_openai_400(base_url: str) -> None:
    response = httpx.post(f"{base_url}/v1/chat/completions", json={"model": "m"}, timeout=5)
    assert response.status_code == 400
    assert response.headers[REPLICA_HEADER] == "chat[0]"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "messages"
    with pytest.raises(openai.BadRequestError) as raised:
        client_for(base_url).chat.completions.create(model="m", messages=[])
    assert raised.value.status_code == 400


def test_unknown_route_has_header_and_error_shape(base_url: str) -> None:
    response = httpx.get(f"{base_url}/v1/nope", timeout=5)
    assert response.status_code == 404
    assert response.headers[REPLICA_HEADER] == "chat[0]"
    assert response.json()["error"]["type"] == "invalid_request_error"
    response = httpx.delete(f"{base_url}/health", timeout=5)
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD"}
    assert response.headers[REPLICA_HEADER] == "chat[0]"


def test_same_seed_same_content(start_replica: StartReplica) -> None:
    def contents(seed: int) -> list[str]:
        client = client_for(start_replica(ReplicaConfig(name=f"s{seed}", seed=seed, **FAST)))
        replies = []
        for max_tokens in (3, 8, 5):
            completion = client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=max_tokens)
            replies.append(completion.choices[0].message.content)
        return replies

    first = contents(11)
    assert first == contents(11)
    assert first != contents(12)
    assert len(set(first)) == 3


def test_models_list(base_url: str) -> None:
    models = client_for(base_url).models.list()
    assert [model.id for model in models] == ["fake-model"]
    assert models.data[0].owned_by == "chaosgate"


def test_stats_count_retried_requests(base_url: str) -> None:
    request = {"model": "m", "messages": MESSAGES}
    url = f"{base_url}/v1/chat/completions"
    assert httpx.post(url, json=request, timeout=5).status_code == 200
    assert httpx.post(url, json=request, headers={"x-stainless-retry-count": "1"}, timeout=5).status_code == 200
    assert httpx.post(url, json=request, headers={"x-stainless-retry-count": "0"}, timeout=5).status_code == 200
    httpx.get(f"{base_url}/health", timeout=5)  # health checks are not counted
    stats = httpx.get(f"{base_url}/_chaosgate/stats", timeout=5)
    assert stats.headers[REPLICA_HEADER] == "chat[0]"
    assert stats.json() == {"replica": "chat[0]", "requests": 3, "retried_requests": 1}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli_serves_and_second_instance_exits_2() -> None:
    port = _free_port()

    def command(name: str) -> list[str]:
        return [sys.executable, "-m", "fakes.openai_server", "--name", name, "--host", "127.0.0.1",
                "--port", str(port), "--seed", "7", "--ttft-ms", "1"]

    first = subprocess.Popen(command("cli[0]"), cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert first.poll() is None, f"replica exited early: {first.stderr.read() if first.stderr else ''}"
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "replica did not serve /health in time"
                time.sleep(0.05)
        assert response.status_code == 200
        assert response.headers[REPLICA_HEADER] == "cli[0]"

        second = subprocess.run(command("cli[1]"), cwd=ROOT, capture_output=True, text=True, timeout=20)
        assert second.returncode == 2
        assert len(second.stderr.strip().splitlines()) == 1
        assert str(port) in second.stderr
    finally:
        first.terminate()
        try:
            _, stderr = first.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            first.kill()
            _, stderr = first.communicate(timeout=10)
    # uvicorn shuts down gracefully, then re-raises the captured SIGTERM.
    assert first.returncode in (0, -signal.SIGTERM), stderr
