"""The fake MCP server, driven by the official mcp client (always with a read timeout) and by raw httpx."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, get_args

import httpx
import pydantic
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError

from fakes.identity import REPLICA_HEADER
from fakes.mcp import McpConfig, create_apps
from fakes.mcp_modes import MCP_MODE_MODELS, MCP_MODES, McpMode

from .conftest import ROOT, Running, RunningProcess, StartCli, StartFake, wait_for

READ_TIMEOUT = 2.0
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}


def run(coro: Coroutine[Any, Any, Any], timeout: float = 20) -> Any:
    """Run a client coroutine to completion, bounded in time."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def leaf(exc: BaseException) -> BaseException:
    """The first real exception inside the ExceptionGroups the SDK's task groups wrap it in."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


async def connected(url: str, step: Callable[[Client], Awaitable[Any]], mode: str = "auto",
                    read_timeout: float = READ_TIMEOUT) -> Any:
    async with Client(f"{url}/mcp", read_timeout_seconds=read_timeout, mode=mode) as client:
        return await step(client)


def outcome(url: str, step: Callable[[Client], Awaitable[Any]], read_timeout: float = READ_TIMEOUT) -> Any:
    """What ``step`` returns, or the (unwrapped) exception the client raised."""
    try:
        return run(connected(url, step, read_timeout=read_timeout))
    except BaseException as exc:  # noqa: BLE001 - the exception is the observation
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        return leaf(exc)


def post(fake: Running, message: dict[str, Any], session: str | None = None, **headers: str) -> httpx.Response:
    extra = {"mcp-session-id": session} if session else {}
    return httpx.post(f"{fake.url}/mcp", json=message, headers={**HEADERS, **extra, **headers}, timeout=5)


def new_session(fake: Running) -> str:
    response = post(fake, INIT)
    assert response.status_code == 200
    session = response.headers["mcp-session-id"]
    assert post(fake, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session).status_code == 202
    return session


async def _list_names(client: Client) -> list[str]:
    return [tool.name for tool in (await client.list_tools()).tools]


async def _add(client: Client) -> Any:
    return await client.call_tool("calculator", {"a": 2, "b": 3, "op": "add"})


@pytest.fixture
def mcp(start_fake: StartFake) -> Running:
    return start_fake(create_apps(McpConfig(name="tools[0]", seed=7)))


# -- the protocol, through the official client -------------------------------------------------

def test_initialize_list_call_with_official_client(mcp: Running) -> None:
    async def session(client: Client) -> None:
        assert client.protocol_version == "2025-11-25"
        assert client.server_info is not None and client.server_info.name == "chaosgate-fake-mcp"
        assert client.server_capabilities.tools is not None
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == {"lookup", "calculator"}
        assert tools["calculator"].input_schema["required"] == ["a", "b", "op"]
        assert tools["calculator"].output_schema is not None
        result = await client.call_tool("calculator", {"a": 6, "b": 7, "op": "mul"})
        assert not result.is_error and result.structured_content == {"result": 42.0, "expression": "6 * 7"}
        assert result.content[0].text == '{"result": 42.0, "expression": "6 * 7"}'  # type: ignore[union-attr]
        found = await client.call_tool("lookup", {"user_id": 3})
        assert found.structured_content is not None and found.structured_content["found"] is True
        assert "@" in found.structured_content["email"]
        missing = await client.call_tool("lookup", {"user_id": 999})
        assert missing.structured_content == {"user_id": 999, "found": False, "name": None, "email": None, "city": None}
        failed = await client.call_tool("calculator", {"a": 1, "b": 0, "op": "div"})
        assert failed.is_error and "zero" in failed.content[0].text  # type: ignore[union-attr]
        invalid = await client.call_tool("calculator", {"a": "x", "b": 0, "op": "pow"})
        assert invalid.is_error and "invalid arguments" in invalid.content[0].text  # type: ignore[union-attr]
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("nope", {})
        assert unknown.value.code == -32602

    run(connected(mcp.url, session))
    stats = mcp.stats()
    assert stats["methods"] == {"initialize": 1, "tools/list": 1, "tools/call": 6}
    assert stats["sessions"] == 0  # the client ended its session with DELETE


def test_ping_and_older_protocol_version_in_legacy_mode(mcp: Running) -> None:
    async def session(client: Client) -> str:
        with pytest.warns(MCPDeprecationWarning, match="ping is removed"):  # 2026-07-28 removed ping
            await client.send_ping()
        return client.protocol_version

    assert run(connected(mcp.url, session, mode="legacy")) == "2025-11-25"
    response = post(mcp, {**INIT, "params": {**INIT["params"], "protocolVersion": "2025-03-26"}})  # type: ignore[dict-item]
    assert response.json()["result"]["protocolVersion"] == "2025-03-26"
    response = post(mcp, {**INIT, "params": {**INIT["params"], "protocolVersion": "2099-01-01"}})  # type: ignore[dict-item]
    assert response.json()["result"]["protocolVersion"] == "2025-11-25"  # ours: the client decides


@pytest.mark.parametrize("response_format", ["json", "sse", "mixed"])
def test_json_and_sse_responses(start_fake: StartFake, response_format: str) -> None:
    fake = start_fake(create_apps(McpConfig(name="f[0]", response_format=response_format)))  # type: ignore[arg-type]
    assert run(connected(fake.url, _add)).structured_content["result"] == 5.0
    session = new_session(fake)
    call = post(fake, {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                       "params": {"name": "calculator", "arguments": {"a": 1, "b": 1, "op": "add"}}}, session)
    listing = post(fake, {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}, session)
    sse_for = {"json": (False, False), "sse": (True, True), "mixed": (True, False)}[response_format]
    for response, sse in zip((call, listing), sse_for, strict=True):
        assert response.headers[REPLICA_HEADER] == "f[0]"
        assert response.headers["content-type"].startswith("text/event-stream" if sse else "application/json")
        if sse:
            assert response.headers["x-accel-buffering"] == "no"
            assert response.text.startswith(": chaosgate\n\nevent: message\ndata: {")


def test_transport_rules(mcp: Running) -> None:
    session = new_session(mcp)
    ping = {"jsonrpc": "2.0", "id": 5, "method": "ping"}
    assert post(mcp, ping, session).json() == {"jsonrpc": "2.0", "id": 5, "result": {}}
    assert post(mcp, ping).status_code == 400  # no session
    assert post(mcp, ping, "no-such-session").status_code == 404
    assert post(mcp, ping, session, **{"mcp-protocol-version": "2026-07-28"}).status_code == 400
    assert post(mcp, ping, session, **{"mcp-protocol-version": "2025-06-18"}).status_code == 200
    assert post(mcp, ping, session, accept="application/json").status_code == 406
    assert post(mcp, ping, session, origin="http://evil.example").status_code == 403
    assert post(mcp, ping, session, origin="http://localhost:3000").status_code == 200
    assert httpx.post(f"{mcp.url}/mcp", content=b"{", headers=HEADERS, timeout=5).json()["error"]["code"] == -32700
    assert httpx.post(f"{mcp.url}/mcp", content=b"{}", timeout=5,
                      headers={**HEADERS, "content-type": "text/plain"}).status_code == 415
    assert post(mcp, [ping], session).status_code == 400  # type: ignore[arg-type]
    assert post(mcp, {"jsonrpc": "2.0", "id": 6, "method": "resources/list"}, session).json()["error"]["code"] == -32601
    discover = post(mcp, {"jsonrpc": "2.0", "id": 1, "method": "server/discover"}, **{"mcp-protocol-version": "2026-07-28"})
    assert discover.status_code == 200 and discover.json()["error"]["code"] == -32601
    get = httpx.get(f"{mcp.url}/mcp", headers={"accept": "text/event-stream", "mcp-session-id": session}, timeout=5)
    assert get.status_code == 405 and get.headers["allow"] == "POST, DELETE"
    assert httpx.delete(f"{mcp.url}/mcp", headers={"mcp-session-id": session}, timeout=5).status_code == 200
    assert post(mcp, ping, session).status_code == 404  # ended
    assert httpx.delete(f"{mcp.url}/mcp", headers={"mcp-session-id": session}, timeout=5).status_code == 404


def test_idle_session_expires_with_404(start_fake: StartFake) -> None:
    fake = start_fake(create_apps(McpConfig(name="ttl[0]", session_ttl_s=0.2)))
    session = new_session(fake)
    ping = {"jsonrpc": "2.0", "id": 7, "method": "ping"}
    assert post(fake, ping, session).status_code == 200
    wait_for(lambda: fake.stats()["sessions"] == 0, 5, "the idle session to expire")  # the control API touches none
    assert fake.stats()["sessions_expired"] == 1
    response = post(fake, ping, session)
    assert response.status_code == 404 and response.json()["error"]["message"] == "Session not found"


def test_health_shallow_and_deep(mcp: Running) -> None:
    assert httpx.get(f"{mcp.url}/health", timeout=5).json() == {"status": "ok", "replica": "tools[0]"}
    assert httpx.get(f"{mcp.url}/health/deep", timeout=5).json() == {"status": "ok", "replica": "tools[0]"}


def test_control_api_is_not_on_the_data_port(mcp: Running) -> None:
    for method, path in [("GET", "/fault"), ("PUT", "/fault"), ("DELETE", "/fault"), ("GET", "/stats")]:
        assert httpx.request(method, f"{mcp.url}{path}", json={"mode": "session_expiry"}, timeout=5).status_code == 404
    assert httpx.get(f"{mcp.control}/fault", timeout=5).json() == {"mode": "none"}
    bad = httpx.put(f"{mcp.control}/fault", json={"mode": "tools_disappear", "tools": ["hammer"]}, timeout=5)
    assert bad.status_code == 422 and "tools.0" in bad.json()["error"]


# -- fault modes, seen from the client ---------------------------------------------------------

def test_mode_unsupported_protocol_version(mcp: Running) -> None:
    mcp.set_fault({"mode": "unsupported_protocol_version", "version": "1999-01-01"})
    error = outcome(mcp.url, _list_names)
    assert isinstance(error, RuntimeError) and "Unsupported protocol version from the server: 1999-01-01" in str(error)


@pytest.mark.parametrize(("mode", "field"), [("missing_capabilities", "capabilities"), ("missing_server_info", "serverInfo")])
def test_mode_missing_initialize_fields(mcp: Running, mode: str, field: str) -> None:
    mcp.set_fault({"mode": mode})
    error = outcome(mcp.url, _list_names)
    assert isinstance(error, pydantic.ValidationError) and error.title == "InitializeResult"
    assert error.errors()[0]["loc"] == (field,) and error.errors()[0]["type"] == "missing"


def test_mode_missing_capabilities(mcp: Running) -> None:
    mcp.set_fault({"mode": "missing_capabilities"})
    assert "capabilities" not in post(mcp, INIT).json()["result"]


def test_mode_missing_server_info(mcp: Running) -> None:
    mcp.set_fault({"mode": "missing_server_info"})
    assert "serverInfo" not in post(mcp, INIT).json()["result"]
    assert httpx.get(f"{mcp.url}/health/deep", timeout=5).json()["reason"] == "initialize answered no serverInfo"


def test_mode_input_schema_not_object(mcp: Running) -> None:
    mcp.set_fault({"mode": "input_schema_not_object", "tool": "lookup"})
    error = outcome(mcp.url, _list_names)
    assert isinstance(error, pydantic.ValidationError) and error.title == "ListToolsResult"
    assert error.errors()[0]["loc"] == ("tools", 0, "inputSchema", "type")


def test_mode_result_without_content(mcp: Running) -> None:
    mcp.set_fault({"mode": "result_without_content"})
    error = outcome(mcp.url, _add)
    assert isinstance(error, pydantic.ValidationError) and error.title == "CallToolResult"
    assert error.errors()[0]["loc"] == ("content",)
    assert httpx.get(f"{mcp.url}/health/deep", timeout=5).status_code == 503


def test_mode_structured_content_mismatch(mcp: Running) -> None:
    mcp.set_fault({"mode": "structured_content_mismatch"})
    error = outcome(mcp.url, _add)
    assert isinstance(error, RuntimeError)
    assert "Invalid structured content returned by tool calculator: '5.0' is not of type 'number'" in str(error)
    lookup = outcome(mcp.url, lambda c: c.call_tool("lookup", {"user_id": 1}))
    assert isinstance(lookup, RuntimeError) and "is not of type" in str(lookup)


def test_mode_wrong_jsonrpc_id(mcp: Running) -> None:
    mcp.set_fault({"mode": "wrong_jsonrpc_id"})
    error = outcome(mcp.url, _list_names, 0.5)  # tools/list is a JSON answer: the client waits for its id in vain
    assert isinstance(error, MCPError) and error.code == -32001 and "timed out" in error.message
    session = new_session(mcp)
    assert post(mcp, {"jsonrpc": "2.0", "id": 9, "method": "ping"}, session).json()["id"] == 1_000_009


def test_mode_wrong_content_type(mcp: Running) -> None:
    mcp.set_fault({"mode": "wrong_content_type"})
    error = outcome(mcp.url, _list_names)
    assert isinstance(error, MCPError) and error.code == -32600
    assert error.message == "Unexpected content type: text/plain; charset=utf-8"


def test_mode_session_expiry(mcp: Running) -> None:
    mcp.set_fault({"mode": "session_expiry"})
    error = outcome(mcp.url, _list_names)
    assert isinstance(error, MCPError) and error.code == -32600 and error.message == "Session not found"
    session = new_session(mcp)
    assert post(mcp, {"jsonrpc": "2.0", "id": 2, "method": "ping"}, session).status_code == 404
    mcp.clear_fault()
    assert post(mcp, {"jsonrpc": "2.0", "id": 3, "method": "ping"}, session).status_code == 404  # it stays ended


def test_mode_tools_disappear(mcp: Running) -> None:
    mcp.set_fault({"mode": "tools_disappear", "tools": ["calculator"]})
    assert outcome(mcp.url, _list_names) == ["lookup"]
    mcp.set_fault({"mode": "tools_disappear"})
    assert outcome(mcp.url, _list_names) == []
    assert outcome(mcp.url, _add).structured_content["result"] == 5.0  # calling still works


# -- every mode can be switched off again at runtime ----------------------------------------------

def _flow(fake: Running) -> Any:
    async def everything(client: Client) -> tuple[list[str], Any]:
        names = await _list_names(client)
        result = await _add(client)
        return names, result.structured_content

    return outcome(fake.url, everything, 0.5)


def _fails(fake: Running) -> bool:
    return isinstance(_flow(fake), BaseException)


PROBES: dict[str, tuple[dict[str, object], Callable[[Running], bool]]] = {
    "unsupported_protocol_version": ({}, _fails),
    "missing_capabilities": ({}, _fails),
    "missing_server_info": ({}, _fails),
    "input_schema_not_object": ({}, _fails),
    "result_without_content": ({}, _fails),
    "structured_content_mismatch": ({}, _fails),
    "wrong_jsonrpc_id": ({}, _fails),
    "wrong_content_type": ({}, _fails),
    "session_expiry": ({}, _fails),
    "tools_disappear": ({}, lambda f: _flow(f)[0] == []),
}


@pytest.fixture(scope="module")
def cli_mcp(start_cli: StartCli) -> RunningProcess:
    return start_cli("fakes.mcp", "tools[0]", "--seed", "3")


@pytest.mark.parametrize("mode", sorted(PROBES))
def test_mode_switches_off_at_runtime(cli_mcp: RunningProcess, mode: str) -> None:
    params, probe = PROBES[mode]
    cli_mcp.set_fault({"mode": mode, **params})
    assert probe(cli_mcp), f"{mode} does not show"
    cli_mcp.clear_fault()
    assert _flow(cli_mcp) == (["lookup", "calculator"], {"result": 5.0, "expression": "2 + 3"})


def test_every_mode_has_a_client_test_and_a_switch_off_test() -> None:
    modes = set(MCP_MODES.json_schema()["discriminator"]["mapping"])
    assert set(PROBES) == modes
    assert set(MCP_MODE_MODELS) == set(get_args(get_args(McpMode)[0]))  # what the harness builds mcp_fault from
    assert {name.removeprefix("test_mode_") for name in globals() if name.startswith("test_mode_")} \
        == modes | {"missing_initialize_fields", "switches_off_at_runtime"}


def test_cli_rejects_a_bad_fault() -> None:
    result = subprocess.run([sys.executable, "-m", "fakes.mcp", "--name", "x", "--port", "1",
                             "--fault", '{"mode": "session_expiry", "rate": 2}'],
                            cwd=ROOT, capture_output=True, text=True, timeout=20)
    assert result.returncode == 2 and "rate" in result.stderr
