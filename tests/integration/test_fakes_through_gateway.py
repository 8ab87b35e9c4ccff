"""The fakes behind the real gateway: a stack started by the harness's local runtime (Envoy,
Toxiproxy, two fake LLM replicas and two fake MCP replicas), driven by the official openai and
mcp clients through Envoy's routes, with faults switched through the harness's fault seam."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from harness.errors import FaultError
from harness.faults import FAULTS, ControlFault, Fault
from harness.runtimes.base import Stack
from harness.runtimes.local import LocalRuntime
from harness.scenario import parse_scenario

SCENARIO = """
name: fakes-through-gateway
gateway:
  health_check: {interval: 1s, timeout: 500ms, no_traffic_interval: 1s}
upstreams:
  - {name: chat, kind: openai, replicas: 2, ttft: 5ms, tokens_per_s: 2000}
  - {name: tools, kind: mcp, replicas: 2, ttft: 400ms}
load: {duration: 10s, max_tokens: 4}
"""
MESSAGES = [{"role": "user", "content": "hello"}]
READ_TIMEOUT = 5.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    runtime = LocalRuntime()
    try:
        yield runtime.up(parse_scenario(SCENARIO, "inline.yaml"), tmp_path_factory.mktemp("through-gateway"))
    finally:
        runtime.down()


def openai_client(stack: Stack, prefix: str = "/chat") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.gateway.url}{prefix}/v1", api_key="x", max_retries=0, timeout=10)


def mcp_call(stack: Stack, *calls: tuple[str, dict[str, Any]]) -> list[Any]:
    """initialize, tools/list, then each tools/call, through the gateway, in one session."""
    async def session() -> list[Any]:
        async with Client(f"{stack.gateway.url}/tools/mcp", read_timeout_seconds=READ_TIMEOUT) as client:
            results: list[Any] = [[tool.name for tool in (await client.list_tools()).tools]]
            for name, arguments in calls:
                results.append((await client.call_tool(name, arguments)).structured_content)
            return results

    return asyncio.run(asyncio.wait_for(session(), 30))


def fault(**fields: Any) -> Fault:
    return FAULTS[fields["kind"]].model_validate({"at": 0, "for": 1, **fields})


@pytest.mark.integration
def test_openai_client_through_the_gateway(stack: Stack) -> None:
    client = openai_client(stack)
    served = set()
    for _ in range(4):
        raw = client.chat.completions.with_raw_response.create(model="fake-model", messages=MESSAGES)
        assert raw.parse().choices[0].finish_reason == "stop"
        served.add(raw.headers["x-chaosgate-replica"])
    assert served == {"chat[0]", "chat[1]"}
    chunks = list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[-1].usage is not None and chunks[-2].choices[0].finish_reason == "stop"
    embedding = client.embeddings.create(model="m", input="hello")  # base64 on the wire
    assert len(embedding.data[0].embedding) == 16
    assert [m.id for m in client.models.list()] == ["fake-model"]
    assert openai_client(stack, prefix="").models.list().data  # "/" routes to the load's pool, chat


@pytest.mark.integration
def test_mcp_client_through_the_gateway_keeps_its_session_on_one_replica(stack: Stack) -> None:
    calls = [("calculator", {"a": i, "b": 2, "op": "mul"}) for i in range(5)] + [("lookup", {"user_id": 2})]
    names, *results = mcp_call(stack, *calls)
    assert names == ["lookup", "calculator"]
    assert [r["result"] for r in results[:5]] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert results[5]["found"] is True
    # Raw: every request of one session reaches the replica that issued it (Envoy wraps the
    # replica's address into the session id), although the pool is round robin.
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    url = f"{stack.gateway.url}/tools/mcp"
    init = httpx.post(url, headers=headers, timeout=10, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}})
    session = {**headers, "mcp-session-id": init.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
    replicas = {httpx.post(url, headers=session, timeout=10, json={"jsonrpc": "2.0", "id": i, "method": "ping"}
                           ).headers["x-chaosgate-replica"] for i in range(2, 8)}
    assert replicas == {init.headers["x-chaosgate-replica"]}


@pytest.mark.integration
def test_sse_is_not_buffered_by_the_gateway(stack: Stack) -> None:
    """A tools/call answered as SSE: its first bytes come at once, the message 400 ms later."""
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    url = f"{stack.gateway.url}/tools/mcp"
    init = httpx.post(url, headers=headers, timeout=10, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}})
    assert init.headers["content-type"].startswith("application/json")  # mixed: JSON for all but tools/call
    session = {**headers, "mcp-session-id": init.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "calculator", "arguments": {"a": 1, "b": 2, "op": "add"}}}
    sent = time.perf_counter()
    arrivals: list[tuple[float, bytes]] = []
    with httpx.stream("POST", url, headers=session, json=call, timeout=10) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for chunk in response.iter_raw():
            arrivals.append((time.perf_counter() - sent, chunk))
    body = b"".join(chunk for _, chunk in arrivals)
    assert body.startswith(b": chaosgate\n\n") and b'"result":3.0' in body
    first, last = arrivals[0][0], arrivals[-1][0]
    assert first < 0.3 and last - first >= 0.3, arrivals


@pytest.mark.integration
def test_control_api_is_not_reachable_through_the_gateway(stack: Stack) -> None:
    for prefix in ("/chat", "/tools", ""):
        for method in ("GET", "PUT", "DELETE"):
            for path in ("/fault", "/stats", "/modes"):
                response = httpx.request(method, f"{stack.gateway.url}{prefix}{path}", timeout=10,
                                         json={"mode": "hang_before_headers"})
                assert response.status_code == 404, (method, prefix, path)
                assert response.headers["x-chaosgate-replica"]  # the fake's data port said so, not Envoy
    for name in stack.replicas:
        assert httpx.get(f"{stack.control_url(name)}/fault", timeout=5).json() == {"mode": "none"}


# Control faults of other fakes than the OpenAI and MCP servers, with their live tests in their own file.
LIVE_TESTS_ELSEWHERE = {"dns": "test_dns_fault_live.py", "anthropic_fault": "test_anthropic_through_gateway.py"}


def test_every_control_fault_kind_has_a_live_test() -> None:
    tested = {name.removeprefix("test_").removesuffix("_through_the_fault_seam") for name in globals()
              if name.endswith("_through_the_fault_seam")}
    here = Path(__file__).parent
    for kind, file in LIVE_TESTS_ELSEWHERE.items():
        if ".inject(stack" in (here / file).read_text():  # its tests inject the fault into a live stack
            tested.add(kind)
    assert tested == {kind for kind, fault in FAULTS.items() if issubclass(fault, ControlFault)}


@pytest.mark.integration
def test_llm_fault_through_the_fault_seam(stack: Stack) -> None:
    error_status = fault(kind="llm_fault", target="chat", mode="error_status", status=503)
    for replica in ("chat[0]", "chat[1]"):
        error_status.inject(stack, replica)
    try:
        with pytest.raises(openai.InternalServerError) as raised:
            openai_client(stack).chat.completions.create(model="m", messages=MESSAGES)
        assert raised.value.status_code == 503 and raised.value.code == "server_is_overloaded"
    finally:
        for replica in ("chat[0]", "chat[1]"):
            error_status.clear(stack, replica)
    assert openai_client(stack).chat.completions.create(model="m", messages=MESSAGES).choices


@pytest.mark.integration
def test_mcp_fault_through_the_fault_seam(stack: Stack) -> None:
    expiry = fault(kind="mcp_fault", target="tools", mode="session_expiry")
    for replica in ("tools[0]", "tools[1]"):
        expiry.inject(stack, replica)
    try:
        with pytest.raises(BaseException) as raised:  # noqa: PT011 - the SDK wraps it in ExceptionGroups
            mcp_call(stack)
        error: BaseException = raised.value
        while isinstance(error, BaseExceptionGroup):
            error = error.exceptions[0]
        assert isinstance(error, MCPError) and error.message == "Session not found"
    finally:
        for replica in ("tools[0]", "tools[1]"):
            expiry.clear(stack, replica)
    assert mcp_call(stack, ("calculator", {"a": 1, "b": 1, "op": "add"}))[1]["result"] == 2.0


@pytest.mark.integration
def test_a_control_fault_on_a_dead_control_api_is_a_fault_error(stack: Stack, tmp_path: Path) -> None:
    class Unreachable:
        toxiproxy = stack.toxiproxy

        def proxy_name(self, replica: str) -> str:
            return stack.proxy_name(replica)

        def control_url(self, replica: str) -> str:
            return "http://127.0.0.1:9"  # discard: nothing listens

    with pytest.raises(FaultError, match=r"chat\[0\]: control API PUT"):
        fault(kind="llm_fault", target="chat[0]", mode="inference_fail").inject(Unreachable(), "chat[0]")
