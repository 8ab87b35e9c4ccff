"""The fake Anthropic server, driven by the official anthropic client (max_retries=0) and by raw httpx."""

from __future__ import annotations

import functools

import json
import threading
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any, get_args

import anthropic
import httpx
import pytest

from fakes.anthropic import MODEL_ID, create_apps
from fakes.anthropic_modes import ANTHROPIC_MODE_MODELS, ANTHROPIC_MODES, AnthropicMode
from fakes.identity import REPLICA_HEADER
from fakes.llm import ReplicaConfig

from .conftest import cpu_demand, Running, RunningProcess, StartCli, StartFake, wait_for

FAST: dict[str, Any] = {"ttft_ms": 1.0, "tokens_per_s": 5000.0}
MESSAGES: list[Any] = [{"role": "user", "content": "Say something."}]
EVENT_ORDER = ["message_start", "content_block_start", "ping"]


@functools.cache  # one client (and its connection pool) per fake: a new one per call is slow on a busy machine
def client_for(base_url: str, timeout: float = 5) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=base_url, api_key="x", max_retries=0, timeout=timeout)


def events_of(body: str) -> list[tuple[str, dict[str, Any]]]:
    """The (event name, JSON data) of each SSE event of a body."""
    out = []
    for block in body.split("\n\n"):
        if not block.strip():
            continue
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        out.append((lines["event"], json.loads(lines["data"])))
    return out


@pytest.fixture
def claude(start_fake: StartFake) -> Running:
    return start_fake(create_apps(ReplicaConfig(name="claude[0]", seed=7, **FAST)))


# -- the Messages API -------------------------------------------------------------------------

def test_message_with_official_client(claude: Running) -> None:
    raw = client_for(claude.url).messages.with_raw_response.create(model=MODEL_ID, max_tokens=5, messages=MESSAGES)
    assert raw.headers[REPLICA_HEADER] == "claude[0]"
    assert raw.headers["request-id"].startswith("req_")
    assert raw.headers["anthropic-ratelimit-requests-limit"] == "50"
    assert raw.headers["anthropic-ratelimit-requests-remaining"] == "49"
    assert raw.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    assert "anthropic-ratelimit-tokens-remaining" in raw.headers
    message = raw.parse()
    assert message.id.startswith("msg_") and message.type == "message" and message.role == "assistant"
    assert message.model == MODEL_ID
    assert message.stop_reason == "max_tokens" and message.stop_sequence is None
    block = message.content[0]
    assert isinstance(block, anthropic.types.TextBlock) and len(block.text.split()) == 5
    assert message.usage.output_tokens == 5 and message.usage.input_tokens == 2


def test_reply_capped_by_the_replica_ends_its_turn(start_fake: StartFake) -> None:
    fake = start_fake(create_apps(ReplicaConfig(name="r", max_tokens=3, **FAST)))
    message = client_for(fake.url).messages.create(model=MODEL_ID, max_tokens=100, messages=MESSAGES)
    assert message.stop_reason == "end_turn" and message.usage.output_tokens == 3


def test_latency_is_simulated(start_fake: StartFake) -> None:
    fake = start_fake(create_apps(ReplicaConfig(name="slow", ttft_ms=100, tokens_per_s=100, max_tokens=5)))
    started = time.monotonic()
    client_for(fake.url).messages.create(model=MODEL_ID, max_tokens=5, messages=MESSAGES)
    assert time.monotonic() - started >= 0.1 + 5 / 100


def test_streaming_with_official_client(claude: Running) -> None:
    with client_for(claude.url).messages.stream(model=MODEL_ID, max_tokens=6, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert len(text.split()) == 6
    assert final.content[0].type == "text" and final.content[0].text == text
    assert final.stop_reason == "max_tokens" and final.usage.output_tokens == 6


def test_streaming_event_sequence(claude: Running) -> None:
    response = httpx.post(f"{claude.url}/v1/messages", timeout=5,
                          json={"model": MODEL_ID, "max_tokens": 3, "messages": MESSAGES, "stream": True})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    assert response.headers[REPLICA_HEADER] == "claude[0]" and response.headers["request-id"].startswith("req_")
    events = events_of(response.text)
    assert [name for name, _ in events] == [*EVENT_ORDER, *["content_block_delta"] * 3, "content_block_stop",
                                            "message_delta", "message_stop"]
    assert all(data["type"] == name for name, data in events)  # the data repeats the event's name
    assert events[0][1]["message"]["content"] == [] and events[0][1]["message"]["stop_reason"] is None
    assert events[1][1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert all(data["delta"]["type"] == "text_delta" for name, data in events if name == "content_block_delta")
    assert events[-2][1]["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}
    assert events[-2][1]["usage"] == {"output_tokens": 3}


@pytest.mark.parametrize(("body", "message"), [
    ({"messages": MESSAGES, "max_tokens": 5}, "model: Field required"),
    ({"model": "m", "messages": MESSAGES}, "max_tokens: Field required"),
    ({"model": "m", "max_tokens": 0, "messages": MESSAGES}, "max_tokens: Input should be"),
    ({"model": "m", "max_tokens": 5}, "messages: Field required"),
])
def test_bad_requests_get_anthropic_error_body(claude: Running, body: dict[str, Any], message: str) -> None:
    response = httpx.post(f"{claude.url}/v1/messages", json=body, timeout=5)
    assert response.status_code == 400
    answer = response.json()
    assert answer["type"] == "error" and answer["error"]["type"] == "invalid_request_error"
    assert answer["error"]["message"].startswith(message)
    assert answer["request_id"] == response.headers["request-id"]


def test_unknown_path_and_method(claude: Running) -> None:
    with pytest.raises(anthropic.NotFoundError) as raised:
        client_for(claude.url).get("/v1/nope", cast_to=httpx.Response)
    body = raised.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"] == {"type": "not_found_error", "message": "GET /v1/nope: Not Found"}
    response = httpx.get(f"{claude.url}/v1/messages", timeout=5)
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_models_and_health(claude: Running) -> None:
    assert [model.id for model in client_for(claude.url).models.list()] == [MODEL_ID]
    assert httpx.get(f"{claude.url}/health", timeout=5).json() == {"status": "ok", "replica": "claude[0]"}
    assert httpx.get(f"{claude.url}/health/deep", timeout=5).json()["status"] == "ok"
    assert claude.stats()["requests"] == 1  # health checks are not counted


# -- fault modes, seen from the client ----------------------------------------------------------

@pytest.mark.parametrize(("error", "status", "exception"), [
    ("overloaded_error", 529, anthropic.OverloadedError),
    ("rate_limit_error", 429, anthropic.RateLimitError),
    ("api_error", 500, anthropic.InternalServerError),
])
def test_mode_anthropic_error(claude: Running, error: str, status: int,
                              exception: type[anthropic.APIStatusError]) -> None:
    claude.set_fault({"mode": "anthropic_error", "error": error, "retry_after": "2500ms"})
    client = client_for(claude.url)
    with pytest.raises(exception) as raised:
        client.messages.create(model=MODEL_ID, max_tokens=3, messages=MESSAGES)
    assert raised.value.status_code == status
    headers = raised.value.response.headers
    body = raised.value.response.json()
    assert set(body) == {"type", "error", "request_id"} and body["type"] == "error"
    assert body["error"]["type"] == error and body["error"]["message"]
    assert body["request_id"] == headers["request-id"] == raised.value.request_id
    assert headers["retry-after"] == "3" and headers[REPLICA_HEADER] == "claude[0]"
    if error == "rate_limit_error":
        assert headers["anthropic-ratelimit-requests-remaining"] == "0"
        assert headers["anthropic-ratelimit-tokens-remaining"] == "0"
    else:
        assert "anthropic-ratelimit-requests-remaining" not in headers
    with pytest.raises(exception):  # a stream fails before its first event, with the same error
        list(client.messages.create(model=MODEL_ID, max_tokens=3, messages=MESSAGES, stream=True))


def test_anthropic_error_retry_after_forms(claude: Running) -> None:
    """Retry-After as whole seconds, as an HTTP date, and absent."""
    request = {"model": MODEL_ID, "max_tokens": 3, "messages": MESSAGES}
    claude.set_fault({"mode": "anthropic_error", "error": "rate_limit_error", "retry_after": "30s",
                      "retry_after_format": "http_date"})
    before = time.time()
    response = httpx.post(f"{claude.url}/v1/messages", json=request, timeout=5)
    when = parsedate_to_datetime(response.headers["retry-after"]).timestamp()
    assert response.status_code == 429 and before + 29 <= when <= time.time() + 31
    claude.set_fault({"mode": "anthropic_error", "error": "overloaded_error", "retry_after": None})
    response = httpx.post(f"{claude.url}/v1/messages", json=request, timeout=5)
    assert response.status_code == 529 and "retry-after" not in response.headers


def test_mode_midstream_error(claude: Running) -> None:
    claude.set_fault({"mode": "midstream_error", "after_tokens": 2})
    texts: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as raised:
        for event in client_for(claude.url).messages.create(model=MODEL_ID, max_tokens=6, messages=MESSAGES,
                                                             stream=True):
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                texts.append(event.delta.text)
    assert len(texts) == 2  # two deltas, then the error event
    assert raised.value.status_code == 200  # the stream had begun: the HTTP status says nothing
    assert raised.value.body == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"},
                                 "request_id": raised.value.response.headers["request-id"]}
    body = httpx.post(f"{claude.url}/v1/messages", timeout=5, json={
        "model": MODEL_ID, "max_tokens": 6, "messages": MESSAGES, "stream": True}).text
    names = [name for name, _ in events_of(body)]
    assert names == [*EVENT_ORDER, "content_block_delta", "content_block_delta", "error"]  # no message_stop


def test_mode_stall_first_token(claude: Running) -> None:
    claude.set_fault({"mode": "stall_first_token"})
    seen = b""
    with httpx.stream("POST", f"{claude.url}/v1/messages", timeout=httpx.Timeout(5, read=0.5),
                      json={"model": MODEL_ID, "max_tokens": 3, "messages": MESSAGES, "stream": True}) as response:
        assert response.status_code == 200
        with pytest.raises(httpx.ReadTimeout):
            for chunk in response.iter_raw():
                seen += chunk
    assert [name for name, _ in events_of(seen.decode())] == EVENT_ORDER  # the opening events, then silence
    with pytest.raises(anthropic.APITimeoutError):
        list(client_for(claude.url, timeout=0.5).messages.create(model=MODEL_ID, max_tokens=3, messages=MESSAGES,
                                                                 stream=True))


def test_mode_keepalive_only(claude: Running) -> None:
    claude.set_fault({"mode": "keepalive_only", "interval": "50ms"})
    assert _pings_only(claude)
    # The client skips pings, and each resets its read timeout (0.2 s): after 0.6 s nothing came, nothing raised.
    stream = client_for(claude.url, timeout=0.2).messages.create(model=MODEL_ID, max_tokens=3, messages=MESSAGES,
                                                                stream=True)
    received: list[object] = []
    ended: list[BaseException] = []

    def read() -> None:
        try:
            received.extend(stream)
        except anthropic.APIConnectionError as exc:  # closed under it (below): the end of the test
            ended.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(0.6)
    assert reader.is_alive() and received == [] and ended == []
    stream.close()
    reader.join(5)
    assert not reader.is_alive()


def _pings_only(fake: Running) -> bool:
    """Whether a stream sends ping events and nothing else for 0.3 s."""
    seen = b""
    deadline = time.monotonic() + 0.3
    with httpx.stream("POST", f"{fake.url}/v1/messages", timeout=5,
                      json={"model": MODEL_ID, "max_tokens": 3, "messages": MESSAGES, "stream": True}) as response:
        for chunk in response.iter_raw():
            seen += chunk
            if time.monotonic() > deadline or b"message_stop" in seen:
                break
    names = {name for name, _ in events_of(seen.decode().rsplit("\n\n", 1)[0] + "\n\n")}
    return names == {"ping"}


def test_mode_health_fail(claude: Running) -> None:
    claude.set_fault({"mode": "health_fail", "status": 500})
    assert httpx.get(f"{claude.url}/health", timeout=5).status_code == 500
    assert client_for(claude.url).messages.create(model=MODEL_ID, max_tokens=1, messages=MESSAGES).content


def test_mode_inference_fail(claude: Running) -> None:
    claude.set_fault({"mode": "inference_fail", "status": 529})
    with pytest.raises(anthropic.OverloadedError):
        client_for(claude.url).messages.create(model=MODEL_ID, max_tokens=1, messages=MESSAGES)
    assert httpx.get(f"{claude.url}/health", timeout=5).status_code == 200  # the gray failure
    deep = httpx.get(f"{claude.url}/health/deep", timeout=5)
    assert deep.status_code == 503 and deep.json()["reason"] == "inference answered 529"


def test_control_api_takes_only_anthropic_modes(claude: Running) -> None:
    wrong = httpx.put(f"{claude.control}/fault", json={"mode": "openai_error"}, timeout=5)
    assert wrong.status_code == 422 and "anthropic_error" in wrong.json()["error"]
    assert set(httpx.get(f"{claude.control}/modes", timeout=5).json()["discriminator"]["mapping"]) == \
        set(ANTHROPIC_MODES.json_schema()["discriminator"]["mapping"])


# -- every mode shows from the client, and can be switched off again at runtime ---------------

def _message_error(fake: Running, timeout: float = 5, stream: bool = False) -> BaseException | None:
    client = client_for(fake.url, timeout)
    try:
        if stream:
            events = list(client.messages.create(model=MODEL_ID, max_tokens=3, messages=MESSAGES, stream=True))
            if not events or events[-1].type != "message_stop":
                return EOFError("the stream ended without message_stop")
        else:
            message = client.messages.create(model=MODEL_ID, max_tokens=3, messages=MESSAGES)
            if not isinstance(message, anthropic.types.Message):
                return TypeError(f"not a message: {type(message).__name__}")
    except (anthropic.AnthropicError, ValueError) as exc:
        return exc
    return None


def _elapsed(fake: Running) -> float:
    began = time.perf_counter()
    assert _message_error(fake) is None
    return time.perf_counter() - began


PROBES: dict[str, tuple[dict[str, object], Callable[[RunningProcess], bool]]] = {
    "anthropic_error": ({}, lambda f: isinstance(_message_error(f), anthropic.OverloadedError)),
    "slow_ttft": ({"ttft": "1s"}, lambda f: _elapsed(f) >= 1.0),
    "slow_tokens": ({"tokens_per_s": 5}, lambda f: _elapsed(f) >= 0.5),
    "stall_stream": ({"after_tokens": 1}, lambda f: isinstance(_message_error(f, 0.5, True), anthropic.APITimeoutError)),
    "truncate_stream": ({"after_tokens": 1}, lambda f: isinstance(_message_error(f, stream=True), EOFError)),
    "malformed_sse": ({}, lambda f: isinstance(_message_error(f, stream=True), ValueError)),
    "midstream_error": ({}, lambda f: isinstance(_message_error(f, stream=True), anthropic.APIStatusError)),
    "stall_first_token": ({}, lambda f: isinstance(_message_error(f, 0.5, True), anthropic.APITimeoutError)),
    "keepalive_only": ({"interval": "50ms"}, _pings_only),
    "hang_before_headers": ({}, lambda f: isinstance(_message_error(f, 0.5), anthropic.APITimeoutError)),
    "wrong_content_type": ({}, lambda f: isinstance(_message_error(f), TypeError)),
    "health_fail": ({}, lambda f: httpx.get(f"{f.url}/health", timeout=5).status_code == 503),
    "inference_fail": ({}, lambda f: isinstance(_message_error(f), anthropic.InternalServerError)),
    "memory_growth": ({"mb_per_s": 200, "max_mb": 16}, lambda f: float(str(f.stats()["held_mb"])) > 0),
    "cpu_burn": ({"duty": 0.9}, lambda f: cpu_demand(f) > 0.5),
}


@pytest.fixture(scope="module")
def cli_claude(start_cli: StartCli) -> RunningProcess:
    return start_cli("fakes.anthropic", "claude[0]", "--ttft-ms", "1", "--tokens-per-s", "5000", "--max-tokens", "3")


@pytest.mark.parametrize("mode", sorted(PROBES))
def test_mode_switches_off_at_runtime(cli_claude: RunningProcess, mode: str) -> None:
    params, probe = PROBES[mode]
    cli_claude.set_fault({"mode": mode, **params})
    wait_for(lambda: probe(cli_claude), 5, f"{mode} to show")
    cli_claude.clear_fault()
    assert not probe(cli_claude), f"{mode} still shows after DELETE /fault"
    assert _message_error(cli_claude) is None and _message_error(cli_claude, stream=True) is None


def test_every_mode_has_a_probe() -> None:
    modes = set(ANTHROPIC_MODES.json_schema()["discriminator"]["mapping"])
    assert set(PROBES) == modes
    assert set(ANTHROPIC_MODE_MODELS) == set(get_args(get_args(AnthropicMode)[0]))  # what anthropic_fault is built from


# -- what `chaosgate diagnose` makes of it ------------------------------------------------------

def _walk(claude: Running, kind: str) -> Any:
    from harness.diagnose.base import ProbeSettings
    from harness.diagnose.model import Cluster, Host
    from harness.diagnose.walk import walk

    port = int(claude.url.rsplit(":", 1)[1])
    return walk(Cluster(name="claude", connect_timeout=0.5, kind=kind),
                Host(cluster="claude", address="127.0.0.1", port=port, healthy=False), ProbeSettings())


def test_diagnose_probes_an_anthropic_cluster_on_the_messages_api(claude: Running) -> None:
    healthy = _walk(claude, "anthropic")
    assert healthy.cause is None, healthy.evidence
    inference = next(r for r in healthy.layers if r.layer == "inference")
    assert "POST /v1/messages → 200" in inference.evidence and "message_stop" in inference.evidence
    claude.set_fault({"mode": "midstream_error"})
    broken = _walk(claude, "anthropic")
    assert broken.cause == "stream_broken" and "an error frame" in broken.evidence, broken.evidence
    claude.set_fault({"mode": "keepalive_only", "interval": "0.2s"})   # pings only: a stream that never ends
    pings = _walk(claude, "anthropic")
    assert pings.cause == "stream_broken" and "without message_stop" in pings.evidence, pings.evidence


def test_diagnose_of_an_anthropic_cluster_taken_as_openai_fails_on_the_path(claude: Running) -> None:
    """Why --anthropic exists: the chat completion a default (OpenAI) cluster is probed with is a 404 here."""
    wrong = _walk(claude, "openai")
    assert wrong.cause == "inference_failing" and "POST /v1/chat/completions → 404" in wrong.evidence, wrong.evidence


def test_diagnose_cli_takes_anthropic_clusters(claude: Running, tmp_path: Any) -> None:
    from click.testing import CliRunner

    from harness.cli import main

    port = int(claude.url.rsplit(":", 1)[1])
    config = tmp_path / "envoy.yaml"
    config.write_text(json.dumps({"static_resources": {"clusters": [{
        "name": "claude", "type": "STATIC", "connect_timeout": "0.5s",
        "load_assignment": {"cluster_name": "claude", "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}}]}}))
    claude.set_fault({"mode": "stall_first_token"})
    result = CliRunner().invoke(main, ["diagnose", "--config", str(config), "--anthropic", "claude", "--json"])
    assert result.exit_code == 1, result.output
    host = json.loads(result.output)["hosts"][0]
    assert (host["cause"], host["failing_layer"]) == ("stream_broken", "inference"), host
