"""The fake LLM server, driven by the official openai client (max_retries=0) and by raw httpx."""

from __future__ import annotations

import functools

import base64
import logging
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import get_args

import httpx
import openai
import pytest

from fakes.llm import MODEL_ID, REPLICA_HEADER, ReplicaConfig, create_apps
from fakes.llm_modes import LLM_MODE_MODELS, LLM_MODES, WELCOME_PAGE, LlmMode

from .conftest import cpu_demand, ROOT, Running, RunningProcess, StartCli, StartFake, _free_port, wait_for

FAST = {"ttft_ms": 1.0, "tokens_per_s": 5000.0}
MESSAGES = [{"role": "user", "content": "Say something."}]


@functools.cache  # one client (and its connection pool) per fake: a new one per call is slow on a busy machine
def client_for(base_url: str, timeout: float = 5) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="x", max_retries=0, timeout=timeout)


@pytest.fixture
def llm(start_fake: StartFake) -> Running:
    return start_fake(create_apps(ReplicaConfig(name="chat[0]", seed=7, **FAST)))


# -- endpoints -------------------------------------------------------------------------------

def test_chat_completion_with_official_client(llm: Running) -> None:
    raw = client_for(llm.url).chat.completions.with_raw_response.create(
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


def test_max_tokens_is_capped_by_replica(start_fake: StartFake) -> None:
    fake = start_fake(create_apps(ReplicaConfig(name="r", max_tokens=3, **FAST)))
    completion = client_for(fake.url).chat.completions.create(model="m", messages=MESSAGES, max_completion_tokens=100)
    assert len(completion.choices[0].message.content.split()) == 3


def test_latency_is_simulated(start_fake: StartFake) -> None:
    fake = start_fake(create_apps(ReplicaConfig(name="slow", ttft_ms=100, tokens_per_s=100, max_tokens=5)))
    started = time.monotonic()
    client_for(fake.url).chat.completions.create(model="m", messages=MESSAGES)
    assert time.monotonic() - started >= 0.1 + 5 / 100


def test_streaming_with_official_client(llm: Running) -> None:
    stream = client_for(llm.url).chat.completions.create(model="fake-model", messages=MESSAGES, stream=True, max_tokens=6)
    chunks = list(stream)
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert len(text.split()) == 6
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(chunk.choices[0].finish_reason is None for chunk in chunks[:-1])


def test_streaming_include_usage(llm: Running) -> None:
    chunks = list(client_for(llm.url).chat.completions.create(
        model="fake-model", messages=MESSAGES, stream=True, max_tokens=4, stream_options={"include_usage": True}))
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None and last.usage.completion_tokens == 4
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_streaming_raw_frames(llm: Running) -> None:
    request = {"model": "m", "messages": MESSAGES, "stream": True, "max_tokens": 3,
               "stream_options": {"include_usage": True}}
    response = httpx.post(f"{llm.url}/v1/chat/completions", json=request, timeout=5)
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


def test_embeddings_base64_by_default(llm: Running) -> None:
    client = client_for(llm.url)
    raw = client.embeddings.with_raw_response.create(model="emb", input=["hello world", "bye"])
    assert raw.headers[REPLICA_HEADER] == "chat[0]"
    assert raw.http_request.read().find(b'"encoding_format":"base64"') >= 0  # what the client asked for
    decoded = raw.parse()
    assert [d.index for d in decoded.data] == [0, 1]
    assert all(len(d.embedding) == 16 for d in decoded.data)
    assert decoded.usage.prompt_tokens == 3 and decoded.model == "emb"
    floats = client.embeddings.create(model="emb", input=["hello world", "bye"], encoding_format="float")
    assert [d.embedding for d in floats.data] == [d.embedding for d in decoded.data]  # both are float32
    assert abs(sum(x * x for x in floats.data[0].embedding) - 1.0) < 1e-5
    assert floats.data[0].embedding != floats.data[1].embedding


def test_embeddings_raw_base64_and_dimensions(llm: Running) -> None:
    response = httpx.post(f"{llm.url}/v1/embeddings", timeout=5, json={
        "model": "m", "input": [[1, 2, 3]], "encoding_format": "base64", "dimensions": 4})
    item = response.json()["data"][0]
    assert item["object"] == "embedding" and isinstance(item["embedding"], str)
    assert len(struct.unpack("<4f", base64.b64decode(item["embedding"]))) == 4
    bad = httpx.post(f"{llm.url}/v1/embeddings", json={"model": "m", "input": []}, timeout=5)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "input"
    with pytest.raises(openai.BadRequestError):
        client_for(llm.url).embeddings.create(model="m", input="x", encoding_format="hex")  # type: ignore[arg-type]


def test_models_list(llm: Running) -> None:
    models = client_for(llm.url).models.list()
    assert [model.id for model in models] == [MODEL_ID]
    assert models.data[0].owned_by == "chaosgate"


def test_health_shallow_and_deep(llm: Running) -> None:
    response = httpx.get(f"{llm.url}/health", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "replica": "chat[0]"}
    assert response.headers[REPLICA_HEADER] == "chat[0]"
    deep = httpx.get(f"{llm.url}/health/deep", timeout=5)
    assert deep.status_code == 200 and deep.json()["status"] == "ok" and deep.json()["inference_ms"] > 0


def test_missing_messages_is_openai_400(llm: Running) -> None:
    response = httpx.post(f"{llm.url}/v1/chat/completions", json={"model": "m"}, timeout=5)
    assert response.status_code == 400
    assert response.headers[REPLICA_HEADER] == "chat[0]"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "messages"
    with pytest.raises(openai.BadRequestError) as raised:
        client_for(llm.url).chat.completions.create(model="m", messages=[])
    assert raised.value.status_code == 400


def test_unknown_route_has_header_and_error_shape(llm: Running) -> None:
    response = httpx.get(f"{llm.url}/v1/nope", timeout=5)
    assert response.status_code == 404
    assert response.headers[REPLICA_HEADER] == "chat[0]"
    assert response.json()["error"]["type"] == "invalid_request_error"
    response = httpx.delete(f"{llm.url}/health", timeout=5)
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD"}
    assert response.headers[REPLICA_HEADER] == "chat[0]"


def test_same_seed_same_content(start_fake: StartFake) -> None:
    def contents(seed: int) -> list[str]:
        fake = start_fake(create_apps(ReplicaConfig(name=f"s{seed}", seed=seed, **FAST)))
        client = client_for(fake.url)
        httpx.get(f"{fake.url}/health/deep", timeout=5)  # a deep health check does not shift the content
        return [client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=n).choices[0].message.content
                for n in (3, 8, 5)]

    first = contents(11)
    assert first == contents(11)
    assert first != contents(12)
    assert len(set(first)) == 3


def test_client_retries_are_counted_and_logged(llm: Running, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fakes.requests")
    request = {"model": "m", "messages": MESSAGES}
    url = f"{llm.url}/v1/chat/completions"
    assert httpx.post(url, json=request, timeout=5).status_code == 200
    assert httpx.post(url, json=request, headers={"x-stainless-retry-count": "2"}, timeout=5).status_code == 200
    client_for(llm.url).chat.completions.create(model="m", messages=MESSAGES)  # sends x-stainless-retry-count: 0
    httpx.get(f"{llm.url}/health", timeout=5)  # health checks are not counted
    stats = llm.stats()
    assert stats["requests"] == 3 and stats["retried_requests"] == 1
    assert stats["retry_counts"] == {"0": 2, "2": 1}
    assert [r.getMessage() for r in caplog.records if r.name == "fakes.requests"] == [
        "chat[0] POST /v1/chat/completions x-stainless-retry-count=2"]


# -- the control API ---------------------------------------------------------------------------

def test_control_api_is_not_on_the_data_port(llm: Running) -> None:
    for method, path in [("GET", "/fault"), ("PUT", "/fault"), ("DELETE", "/fault"), ("GET", "/stats"),
                         ("GET", "/modes"), ("GET", "/_chaosgate/stats")]:
        response = httpx.request(method, f"{llm.url}{path}", json={"mode": "hang_before_headers"}, timeout=5)
        assert response.status_code == 404, (method, path)
    assert httpx.get(f"{llm.control}/fault", timeout=5).json() == {"mode": "none"}
    assert client_for(llm.url).models.list().data  # and nothing was switched


def test_control_api_rejects_bad_modes_clearly(llm: Running) -> None:
    bad = httpx.put(f"{llm.control}/fault", json={"mode": "error_status", "status": 404}, timeout=5)
    assert bad.status_code == 422 and "status: Input should be 429, 500, 502 or 503" in bad.json()["error"]
    unknown = httpx.put(f"{llm.control}/fault", json={"mode": "explode"}, timeout=5)
    assert unknown.status_code == 422 and "'explode'" in unknown.json()["error"]
    assert httpx.put(f"{llm.control}/fault", content=b"{", timeout=5).status_code == 400
    modes = httpx.get(f"{llm.control}/modes", timeout=5).json()
    assert set(modes["discriminator"]["mapping"]) >= {"error_status", "cpu_burn"}
    llm.set_fault({"mode": "slow_ttft", "ttft": "250ms"})
    assert httpx.get(f"{llm.control}/fault", timeout=5).json() == {"mode": "slow_ttft", "ttft": "250ms", "rate": 1.0}


# -- fault modes, seen from the client ----------------------------------------------------------

@pytest.mark.parametrize(("status", "exception", "code", "retry_after"), [
    (429, openai.RateLimitError, "rate_limit_exceeded", "1"),
    (500, openai.InternalServerError, None, None),
    (502, openai.InternalServerError, "bad_gateway", None),
    (503, openai.InternalServerError, "server_is_overloaded", "1"),
])
def test_mode_error_status(llm: Running, status: int, exception: type[openai.APIStatusError], code: str | None,
                           retry_after: str | None) -> None:
    llm.set_fault({"mode": "error_status", "status": status})
    client = client_for(llm.url)
    with pytest.raises(exception) as raised:
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert raised.value.status_code == status and raised.value.code == code
    assert raised.value.response.headers.get("retry-after") == retry_after
    assert raised.value.response.headers[REPLICA_HEADER] == "chat[0]"
    with pytest.raises(exception):
        client.embeddings.create(model="m", input="x")
    with pytest.raises(exception):
        list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert client.models.list().data  # not inference: unaffected


def test_mode_error_status_rate(llm: Running) -> None:
    llm.set_fault({"mode": "error_status", "status": 429, "retry_after": "2500ms", "rate": 0.5})
    client = client_for(llm.url)
    failed = 0
    for _ in range(24):
        try:
            client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=1)
        except openai.RateLimitError as exc:
            assert exc.response.headers["retry-after"] == "3" and exc.response.headers["retry-after-ms"] == "2500"
            failed += 1
    assert 4 <= failed <= 20  # seeded: the same count every run
    assert llm.stats()["fault_hits"] == failed


# openai_error: the provider's own errors, exact (status, body, headers), as the official client sees them.
OPENAI_ERRORS = [  # error, status, exception, type, code
    ("rate_limit_exceeded", 429, openai.RateLimitError, "requests", "rate_limit_exceeded"),
    ("insufficient_quota", 429, openai.RateLimitError, "insufficient_quota", "insufficient_quota"),
    ("server_error", 500, openai.InternalServerError, "server_error", None),
    ("overloaded", 503, openai.InternalServerError, "service_unavailable_error", "server_is_overloaded"),
]


@pytest.mark.parametrize(("error", "status", "exception", "type_", "code"), OPENAI_ERRORS)
def test_mode_openai_error(llm: Running, error: str, status: int, exception: type[openai.APIStatusError],
                           type_: str, code: str | None) -> None:
    llm.set_fault({"mode": "openai_error", "error": error, "retry_after": "2500ms"})
    client = client_for(llm.url)
    with pytest.raises(exception) as raised:
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert raised.value.status_code == status and raised.value.code == code and raised.value.type == type_
    headers = raised.value.response.headers
    assert headers[REPLICA_HEADER] == "chat[0]"
    body = raised.value.response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["param"] is None and body["error"]["message"]
    if error == "insufficient_quota":  # not retryable: nothing says when to come back
        assert "retry-after" not in headers and "retry-after-ms" not in headers
    else:
        assert headers["retry-after"] == "3" and headers["retry-after-ms"] == "2500"
    if error == "rate_limit_exceeded":
        assert headers["x-ratelimit-reset-requests"] == "2.5s"
        assert headers["x-ratelimit-remaining-requests"] == "0" and headers["x-ratelimit-limit-requests"] == "500"
        assert "try again in 2.5s" in body["error"]["message"]
    else:
        assert "x-ratelimit-reset-requests" not in headers
    with pytest.raises(exception):  # a stream fails before its first frame, with the same error
        list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))


def test_openai_error_retry_after_forms(llm: Running) -> None:
    """Retry-After as whole seconds (with retry-after-ms), as an HTTP date (without it), and absent."""
    request = {"model": "m", "messages": MESSAGES}
    llm.set_fault({"mode": "openai_error", "error": "rate_limit_exceeded", "retry_after": "30s",
                   "retry_after_format": "http_date"})
    before = time.time()
    headers = httpx.post(f"{llm.url}/v1/chat/completions", json=request, timeout=5).headers
    when = parsedate_to_datetime(headers["retry-after"]).timestamp()
    assert before + 29 <= when <= time.time() + 31 and headers["retry-after"].endswith(" GMT")
    assert "retry-after-ms" not in headers and headers["x-ratelimit-reset-requests"] == "30s"
    llm.set_fault({"mode": "openai_error", "error": "overloaded", "retry_after": None})
    response = httpx.post(f"{llm.url}/v1/chat/completions", json=request, timeout=5)
    assert response.status_code == 503 and "retry-after" not in response.headers
    assert "retry-after-ms" not in response.headers


def test_mode_stall_first_token(llm: Running) -> None:
    llm.set_fault({"mode": "stall_first_token"})
    with httpx.stream("POST", f"{llm.url}/v1/chat/completions", timeout=httpx.Timeout(5, read=0.5),
                      json={"model": "m", "messages": MESSAGES, "stream": True}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        with pytest.raises(httpx.ReadTimeout):
            response.read()
    with pytest.raises(openai.APITimeoutError):  # the client has its 200 and waits for a first chunk that never comes
        list(client_for(llm.url, timeout=0.5).chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert client_for(llm.url).chat.completions.create(model="m", messages=MESSAGES).choices  # plain: unaffected


def test_mode_keepalive_only(llm: Running) -> None:
    llm.set_fault({"mode": "keepalive_only", "interval": "50ms"})
    frames: list[bytes] = []
    with httpx.stream("POST", f"{llm.url}/v1/chat/completions", timeout=5,
                      json={"model": "m", "messages": MESSAGES, "stream": True}) as response:
        assert response.status_code == 200
        for chunk in response.iter_raw():
            frames += [frame for frame in chunk.split(b"\n\n") if frame]
            if len(frames) >= 3:
                break
    assert frames[:3] == [b": keep-alive"] * 3  # SSE comments only: no data frame
    # The official client skips comments, and each one resets its read timeout (0.2 s): after 0.6 s it is
    # still waiting for a first chunk, with none received and no timeout raised.
    stream = client_for(llm.url, timeout=0.2).chat.completions.create(model="m", messages=MESSAGES, stream=True)
    received: list[object] = []
    ended: list[BaseException] = []

    def read() -> None:
        try:
            received.extend(stream)
        except openai.APIConnectionError as exc:  # closed under it (below): the end of the test
            ended.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(0.6)
    assert reader.is_alive() and received == [] and ended == []
    stream.close()
    reader.join(5)
    assert not reader.is_alive()


def test_mode_slow_ttft(llm: Running) -> None:
    llm.set_fault({"mode": "slow_ttft", "ttft": "300ms"})
    began = time.perf_counter()
    stream = client_for(llm.url).chat.completions.create(model="m", messages=MESSAGES, stream=True, max_tokens=3)
    first = next(iter(stream))
    assert first.choices[0].delta.role == "assistant" and time.perf_counter() - began >= 0.3
    began = time.perf_counter()
    client_for(llm.url).embeddings.create(model="m", input="x")
    assert time.perf_counter() - began >= 0.3


def test_mode_slow_tokens(llm: Running) -> None:
    llm.set_fault({"mode": "slow_tokens", "tokens_per_s": 20})
    sent = time.perf_counter()
    stream = client_for(llm.url).chat.completions.create(model="m", messages=MESSAGES, stream=True, max_tokens=4)
    arrivals = [time.perf_counter() for chunk in stream if chunk.choices and chunk.choices[0].delta.content]
    assert len(arrivals) == 4
    # From the request on (a busy client may read the first tokens late and the rest at once, so the gaps between
    # arrivals say less): the fake spaced four tokens 1/20 s apart, the default timing streams them in a few ms.
    assert arrivals[-1] - sent >= 3 / 20 * 0.9


def test_mode_stall_stream(llm: Running) -> None:
    llm.set_fault({"mode": "stall_stream", "after_tokens": 2})
    received: list[str] = []
    with pytest.raises(openai.APITimeoutError):
        for chunk in client_for(llm.url, timeout=0.5).chat.completions.create(
                model="m", messages=MESSAGES, stream=True, max_tokens=6):
            received.append(chunk.choices[0].delta.content or "")
    assert len(received) == 1 + 2  # the role chunk and two tokens, then silence
    assert httpx.get(f"{llm.url}/health", timeout=5).status_code == 200  # the replica itself still answers


def test_mode_truncate_stream(llm: Running) -> None:
    llm.set_fault({"mode": "truncate_stream", "after_tokens": 1})
    chunks = list(client_for(llm.url).chat.completions.create(model="m", messages=MESSAGES, stream=True, max_tokens=5))
    assert len(chunks) == 2 and all(c.choices[0].finish_reason is None for c in chunks)  # no error: it just ends
    raw = httpx.post(f"{llm.url}/v1/chat/completions", json={"model": "m", "messages": MESSAGES, "stream": True},
                     timeout=5)
    assert raw.status_code == 200 and "[DONE]" not in raw.text and '"finish_reason":"stop"' not in raw.text


def test_mode_malformed_sse(llm: Running) -> None:
    llm.set_fault({"mode": "malformed_sse", "after_tokens": 2})
    received = []
    with pytest.raises(ValueError):  # json.JSONDecodeError, unwrapped by the client
        for chunk in client_for(llm.url).chat.completions.create(model="m", messages=MESSAGES, stream=True, max_tokens=4):
            received.append(chunk)
    assert len(received) == 3
    assert client_for(llm.url).chat.completions.create(model="m", messages=MESSAGES).choices  # plain: unaffected


def test_mode_midstream_error(llm: Running) -> None:
    llm.set_fault({"mode": "midstream_error", "after_tokens": 0})
    with pytest.raises(openai.APIError) as raised:
        list(client_for(llm.url).chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert "error while processing" in raised.value.message
    raw = httpx.post(f"{llm.url}/v1/chat/completions", json={"model": "m", "messages": MESSAGES, "stream": True},
                     timeout=5)
    assert raw.text.rstrip().endswith('"code":null}}') and "[DONE]" not in raw.text


def test_mode_hang_before_headers(llm: Running) -> None:
    llm.set_fault({"mode": "hang_before_headers"})
    with pytest.raises(openai.APITimeoutError):
        client_for(llm.url, timeout=0.5).chat.completions.create(model="m", messages=MESSAGES)
    with pytest.raises(httpx.ReadTimeout):  # accepted, read, never answered: not even headers
        with httpx.stream("POST", f"{llm.url}/v1/embeddings", json={"model": "m", "input": "x"}, timeout=0.5):
            pass
    assert httpx.get(f"{llm.url}/health", timeout=5).status_code == 200


def test_mode_wrong_content_type(llm: Running) -> None:
    llm.set_fault({"mode": "wrong_content_type"})
    raw = client_for(llm.url).chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    assert raw.status_code == 200 and raw.headers["content-type"] == "text/html; charset=utf-8"
    assert raw.parse() == WELCOME_PAGE  # the client hands back the page as a str, not a ChatCompletion
    chunks = list(client_for(llm.url).chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert chunks == []  # a stream of nothing, without an error


def test_mode_health_fail(llm: Running) -> None:
    llm.set_fault({"mode": "health_fail", "status": 500})
    assert httpx.get(f"{llm.url}/health", timeout=5).status_code == 500
    assert httpx.get(f"{llm.url}/health/deep", timeout=5).status_code == 500
    assert client_for(llm.url).chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content


def test_mode_inference_fail(llm: Running) -> None:
    llm.set_fault({"mode": "inference_fail"})
    with pytest.raises(openai.InternalServerError):
        client_for(llm.url).chat.completions.create(model="m", messages=MESSAGES)
    assert httpx.get(f"{llm.url}/health", timeout=5).status_code == 200  # the shallow check misses it
    deep = httpx.get(f"{llm.url}/health/deep", timeout=5)
    assert deep.status_code == 503 and deep.json()["reason"].startswith("inference answered 500")


def test_mode_memory_growth(start_cli: StartCli) -> None:
    fake = start_cli("fakes.llm", "mem[0]", "--ttft-ms", "1")
    before = fake.rss_mb()
    fake.set_fault({"mode": "memory_growth", "mb_per_s": 400, "max_mb": 64})
    wait_for(lambda: float(fake.stats()["held_mb"]) >= 64, 10, "64 MB held")
    assert fake.rss_mb() >= before + 60  # resident, not just reserved
    assert client_for(fake.url).models.list().data  # it still serves meanwhile
    fake.clear_fault()
    assert fake.stats()["held_mb"] == 0
    wait_for(lambda: fake.rss_mb() < before + 30, 10, "the memory to be released")


def test_mode_cpu_burn(start_cli: StartCli) -> None:
    fake = start_cli("fakes.llm", "cpu[0]", "--ttft-ms", "1")
    fake.set_fault({"mode": "cpu_burn", "duty": 0.9, "period": "200ms"})
    demand, began = fake.demand_seconds(), time.monotonic()
    slowest = 0.0
    while time.monotonic() - began < 0.6:
        sent = time.perf_counter()
        assert httpx.get(f"{fake.url}/v1/models", timeout=5).status_code == 200
        slowest = max(slowest, time.perf_counter() - sent)
    # about 0.9 of a core asked for (on a busy machine it may get less of one)
    assert (fake.demand_seconds() - demand) / (time.monotonic() - began) >= 0.5
    assert slowest >= 0.05  # requests wait behind the spinning loop


# -- the command line ---------------------------------------------------------------------------

def test_cli_serves_and_second_instance_exits_2() -> None:
    port, control = _free_port(), _free_port()

    def command(name: str) -> list[str]:
        return [sys.executable, "-m", "fakes.llm", "--name", name, "--host", "127.0.0.1", "--port", str(port),
                "--control-port", str(control), "--seed", "7", "--ttft-ms", "1",
                "--fault", '{"mode": "health_fail", "status": 502}']

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
        assert response.status_code == 502  # started with --fault
        assert response.headers[REPLICA_HEADER] == "cli[0]"
        assert httpx.get(f"http://127.0.0.1:{control}/fault", timeout=5).json()["mode"] == "health_fail"

        second = subprocess.run(command("cli[1]"), cwd=ROOT, capture_output=True, text=True, timeout=20)
        assert second.returncode == 2
        assert len(second.stderr.strip().splitlines()) == 1
        assert str(port) in second.stderr

        bad = subprocess.run([*command("cli[2]")[:-1], '{"mode": "nope"}'], cwd=ROOT, capture_output=True, text=True,
                             timeout=20)
        assert bad.returncode == 2 and "nope" in bad.stderr
    finally:
        first.terminate()
        try:
            _, stderr = first.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            first.kill()
            _, stderr = first.communicate(timeout=10)
    # uvicorn shuts down gracefully, then re-raises the captured SIGTERM.
    assert first.returncode in (0, -signal.SIGTERM), stderr


# -- every mode can be switched off again at runtime ----------------------------------------------

def _chat_error(fake: Running, timeout: float = 5, stream: bool = False) -> BaseException | None:
    try:
        response = client_for(fake.url, timeout).chat.completions.create(
            model="m", messages=MESSAGES, stream=stream, max_tokens=3)
        if stream:
            chunks = list(response)  # type: ignore[arg-type]
            if not chunks or chunks[-1].choices[0].finish_reason != "stop":
                return EOFError("the stream ended without a finish chunk")
        elif not isinstance(response, openai.types.chat.ChatCompletion):
            return TypeError(f"not a chat completion: {type(response).__name__}")
    except (openai.OpenAIError, ValueError) as exc:
        return exc
    return None


def _keepalive_only(fake: Running) -> bool:
    """Whether a stream sends keep-alive comments and no data frame for 0.3 s (the client's read timeout
    cannot tell: each comment resets it)."""
    seen = b""
    deadline = time.monotonic() + 0.3
    with httpx.stream("POST", f"{fake.url}/v1/chat/completions", timeout=5,
                      json={"model": "m", "messages": MESSAGES, "stream": True, "max_tokens": 3}) as response:
        for chunk in response.iter_raw():
            seen += chunk
            if b"data:" in seen or time.monotonic() > deadline:
                break
    return b": keep-alive" in seen and b"data:" not in seen


def _elapsed(fake: Running) -> float:
    began = time.perf_counter()
    assert _chat_error(fake) is None
    return time.perf_counter() - began


# mode -> (parameters, probe: True while the fault shows from the outside)
PROBES: dict[str, tuple[dict[str, object], Callable[[RunningProcess], bool]]] = {
    "error_status": ({"status": 503}, lambda f: isinstance(_chat_error(f), openai.InternalServerError)),
    "openai_error": ({"error": "insufficient_quota"}, lambda f: isinstance(_chat_error(f), openai.RateLimitError)),
    "stall_first_token": ({}, lambda f: isinstance(_chat_error(f, 0.5, True), openai.APITimeoutError)),
    "keepalive_only": ({"interval": "50ms"}, lambda f: _keepalive_only(f)),
    "slow_ttft": ({"ttft": "1s"}, lambda f: _elapsed(f) >= 1.0),
    "slow_tokens": ({"tokens_per_s": 5}, lambda f: _elapsed(f) >= 0.5),
    "stall_stream": ({"after_tokens": 1}, lambda f: isinstance(_chat_error(f, 0.5, True), openai.APITimeoutError)),
    "truncate_stream": ({"after_tokens": 1}, lambda f: isinstance(_chat_error(f, stream=True), EOFError)),
    "malformed_sse": ({}, lambda f: isinstance(_chat_error(f, stream=True), ValueError)),
    "midstream_error": ({}, lambda f: isinstance(_chat_error(f, stream=True), openai.APIError)),
    "hang_before_headers": ({}, lambda f: isinstance(_chat_error(f, 0.5), openai.APITimeoutError)),
    "wrong_content_type": ({}, lambda f: isinstance(_chat_error(f), TypeError)),
    "health_fail": ({}, lambda f: httpx.get(f"{f.url}/health", timeout=5).status_code == 503),
    "inference_fail": ({}, lambda f: isinstance(_chat_error(f), openai.InternalServerError)),
    "memory_growth": ({"mb_per_s": 200, "max_mb": 16}, lambda f: float(f.stats()["held_mb"]) > 0),
    "cpu_burn": ({"duty": 0.9}, lambda f: cpu_demand(f) > 0.5),
}


@pytest.fixture(scope="module")
def cli_llm(start_cli: StartCli) -> RunningProcess:
    return start_cli("fakes.llm", "chat[0]", "--ttft-ms", "1", "--tokens-per-s", "5000", "--max-tokens", "3")


@pytest.mark.parametrize("mode", sorted(PROBES))
def test_mode_switches_off_at_runtime(cli_llm: RunningProcess, mode: str) -> None:
    params, probe = PROBES[mode]
    cli_llm.set_fault({"mode": mode, **params})
    wait_for(lambda: probe(cli_llm), 5, f"{mode} to show")
    cli_llm.clear_fault()
    assert not probe(cli_llm), f"{mode} still shows after DELETE /fault"
    assert _chat_error(cli_llm) is None and _chat_error(cli_llm, stream=True) is None


def test_every_mode_has_a_client_test_and_a_switch_off_test() -> None:
    modes = set(LLM_MODES.json_schema()["discriminator"]["mapping"])
    assert set(PROBES) == modes
    assert set(LLM_MODE_MODELS) == set(get_args(get_args(LlmMode)[0]))  # what the harness builds llm_fault from
    assert {name.removeprefix("test_mode_") for name in globals() if name.startswith("test_mode_")} \
        == modes | {"error_status_rate", "switches_off_at_runtime"}
