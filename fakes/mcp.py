"""The fake MCP server: Streamable HTTP, revision 2025-11-25, on one endpoint (``/mcp``).

Data port (what clients and the gateway reach)::

    POST   /mcp          JSON-RPC: initialize (issues MCP-Session-Id), notifications/initialized,
                         ping, tools/list, tools/call; server/discover (2026-07-28) gets -32601,
                         so current SDK clients fall back to the initialize handshake
    GET    /mcp          405 (this server opens no server-to-client stream)
    DELETE /mcp          ends the session
    GET    /health       shallow: the process answers
    GET    /health/deep  initialize + tools/list + tools/call run through the same code as clients',
                         checked as strictly as a client would

Requests other than initialize need the session (400 without it, 404 once it ended or idled
out after ``--session-ttl``); ``MCP-Protocol-Version`` must be a supported revision (400),
and is taken as 2025-03-26 when absent. Responses are JSON or SSE (``--response-format``;
``mixed``, the default, streams ``tools/call`` and answers the rest as JSON). An SSE response
sends an SSE comment at once and the message when it is ready. Every response carries
``x-chaosgate-replica: <name>``.

Control port (``--control-port``, 127.0.0.1 only; see fakes.control): the schema-mismatch
fault modes of fakes.mcp_modes, switched at runtime, and the counters. Run::

    python -m fakes.mcp --name 'tools[0]' --port 18091 --control-port 18092 --seed 7
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from fakes.control import FaultSwitch, create_control_app
from fakes.identity import AttemptLog, ReplicaMiddleware, Stats
from fakes.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    RpcError,
    http_error,
    other_id,
    rpc_error,
    valid_id,
)
from fakes.mcp_modes import (
    MCP_MODES,
    InputSchemaNotObject,
    McpMode,
    MissingCapabilities,
    MissingServerInfo,
    ResultWithoutContent,
    SessionExpiry,
    StructuredContentMismatch,
    ToolsDisappear,
    UnsupportedProtocolVersion,
    WrongContentType,
    WrongJsonrpcId,
)
from fakes.mcp_sessions import Sessions
from fakes.mcp_tools import CalculatorOutput, Tool, make_tools
from fakes.serving import FakeApps, add_serving_arguments, serve, tls_from_args

PROTOCOL_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST_VERSION = "2025-11-25"
ASSUMED_VERSION = "2025-03-26"  # when a request carries no MCP-Protocol-Version (transport spec)
SESSION_HEADER = "mcp-session-id"
VERSION_HEADER = "mcp-protocol-version"
SERVER_INFO = {"name": "chaosgate-fake-mcp", "version": "0.1.0"}
SSE_HEADERS = {"cache-control": "no-cache, no-transform", "x-accel-buffering": "no"}
LOCAL_ORIGINS = {"127.0.0.1", "localhost", "::1"}
# The JSON-RPC id of the gateway's MCP health check (harness/gateways/envoy.py): its initialize is not client traffic.
HEALTH_CHECK_ID = "chaosgate-health-check"
ResponseFormat = Literal["json", "sse", "mixed"]


@dataclass(frozen=True)
class McpConfig:
    """How one fake MCP replica behaves."""

    name: str
    seed: int = 0
    session_ttl_s: float = 600.0
    response_format: ResponseFormat = "mixed"
    tool_latency_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.session_ttl_s <= 0 or self.tool_latency_ms < 0 or self.response_format not in ("json", "sse", "mixed"):
            raise ValueError(f"invalid MCP replica config: {self}")


def _mistyped(value: Any) -> Any:
    """A value of another JSON type than ``value``'s."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return len(value)
    return False if value is None else None


class McpServer:
    """One replica: its tools, sessions, fault switch, counters and apps."""

    def __init__(self, config: McpConfig, initial_fault: McpMode | None = None, attempts_file: str | None = None) -> None:
        self.config = config
        self.tools: dict[str, Tool] = make_tools(config.seed)
        self.sessions = Sessions(config.session_ttl_s)
        self.switch: FaultSwitch[McpMode] = FaultSwitch(MCP_MODES, config.seed + 3)
        self.stats = Stats(config.name)
        self.methods: Counter[str] = Counter()
        self.initial_fault = initial_fault
        self.attempts = AttemptLog(attempts_file, config.name) if attempts_file else None

    # -- MCP methods (results as dicts; RpcError for protocol errors) -------------------------
    def initialize_result(self, requested: Any) -> dict[str, Any]:
        version = requested if requested in PROTOCOL_VERSIONS else LATEST_VERSION
        result: dict[str, Any] = {"protocolVersion": version, "capabilities": {"tools": {"listChanged": False}},
                                  "serverInfo": dict(SERVER_INFO),
                                  "instructions": "A fake MCP server for chaos tests: a user lookup and a calculator."}
        fault = self.switch.draw(UnsupportedProtocolVersion, MissingCapabilities, MissingServerInfo)
        if isinstance(fault, UnsupportedProtocolVersion):
            result["protocolVersion"] = fault.version
        elif isinstance(fault, MissingCapabilities):
            del result["capabilities"]
        elif isinstance(fault, MissingServerInfo):
            del result["serverInfo"]
        return result

    def list_tools(self) -> dict[str, Any]:
        tools = [tool.definition() for tool in self.tools.values()]
        fault = self.switch.draw(InputSchemaNotObject, ToolsDisappear)
        if isinstance(fault, InputSchemaNotObject):
            for tool in tools:
                if tool["name"] == fault.tool:
                    tool["inputSchema"] = {"type": "string"}
        elif isinstance(fault, ToolsDisappear):
            tools = [tool for tool in tools if fault.tools is not None and tool["name"] not in fault.tools]
        return {"tools": tools}

    async def call_tool(self, params: Any) -> dict[str, Any]:
        if not isinstance(params, dict) or not isinstance(params.get("name"), str):
            raise RpcError(INVALID_PARAMS, "tools/call needs params.name, the name of a tool")
        tool = self.tools.get(params["name"])
        if tool is None:
            raise RpcError(INVALID_PARAMS, f"Unknown tool: {params['name']}")
        if params.get("arguments") is not None and not isinstance(params["arguments"], dict):
            raise RpcError(INVALID_PARAMS, "tools/call params.arguments must be an object")
        if self.config.tool_latency_ms:
            await asyncio.sleep(self.config.tool_latency_ms / 1000)
        result = tool.call(params.get("arguments"))
        if result["isError"]:
            return result
        fault = self.switch.draw(ResultWithoutContent, StructuredContentMismatch)
        if isinstance(fault, ResultWithoutContent):
            del result["content"]
        elif isinstance(fault, StructuredContentMismatch):
            result["structuredContent"] = {key: _mistyped(value) for key, value in result["structuredContent"].items()}
        return result

    async def handle(self, method: str, params: Any) -> dict[str, Any]:
        if method == "ping":
            return {}
        if method == "tools/list":
            return self.list_tools()
        if method == "tools/call":
            return await self.call_tool(params)
        raise RpcError(METHOD_NOT_FOUND, f"Method not found: {method}")

    # -- Streamable HTTP ----------------------------------------------------------------------
    async def _reply(self, method: str, make: Callable[[], Awaitable[dict[str, Any]]],
                     headers: dict[str, str] | None = None, content_type: str | None = None) -> Response:
        """Answer with the message ``make()`` produces, as JSON or as an SSE stream."""
        fmt = self.config.response_format
        if fmt == "json" or (fmt == "mixed" and method != "tools/call"):
            return JSONResponse(await make(), headers=headers, media_type=content_type)

        async def events() -> AsyncIterator[bytes]:
            # The first bytes leave at once: a gateway that buffers SSE shows up as a late first byte.
            yield b": chaosgate\n\n"
            message = await make()
            yield b"event: message\ndata: " + json.dumps(message, separators=(",", ":")).encode() + b"\n\n"
        return StreamingResponse(events(), media_type=content_type or "text/event-stream",
                                 headers={**SSE_HEADERS, **(headers or {})})

    async def post(self, request: Request) -> Response:
        if (rejected := _check_origin(request)) is not None:
            return rejected
        accept = request.headers.get("accept", "")
        if "application/json" not in accept or "text/event-stream" not in accept:
            return http_error(406, INVALID_REQUEST, "Not Acceptable: Accept must list application/json and text/event-stream")
        if not request.headers.get("content-type", "").startswith("application/json"):
            return http_error(415, INVALID_REQUEST, "Unsupported Media Type: Content-Type must be application/json")
        try:
            message = json.loads(await request.body())
        except ValueError:
            return http_error(400, PARSE_ERROR, "Parse error: the body is not JSON")
        if isinstance(message, list):
            return http_error(400, INVALID_REQUEST, "Invalid Request: JSON-RPC batches are not supported")
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            return http_error(400, INVALID_REQUEST, "Invalid Request: expected a JSON-RPC 2.0 message")
        method, params = message.get("method"), message.get("params")
        is_request = "id" in message
        if is_request and not valid_id(message["id"]):
            return http_error(400, INVALID_REQUEST, "Invalid Request: id must be a string or an integer")
        if not isinstance(method, str):
            if "result" in message or "error" in message:
                return Response(status_code=202)  # a response to a server request (this server sends none)
            return http_error(400, INVALID_REQUEST, "Invalid Request: no method")
        id_ = message.get("id")
        if method == "server/discover":  # 2026-07-28 (stateless); this server speaks the handshake revisions
            return JSONResponse(rpc_error(id_, METHOD_NOT_FOUND, "Method not found: server/discover"))
        if method == "initialize":
            if not is_request:
                return http_error(400, INVALID_REQUEST, "Invalid Request: initialize must be a request")
            return await self._initialize(id_, params)
        session_id = request.headers.get(SESSION_HEADER)
        if not session_id:
            return http_error(400, INVALID_REQUEST, "Bad Request: Missing session ID", id_)
        version = request.headers.get(VERSION_HEADER, ASSUMED_VERSION)
        if version not in PROTOCOL_VERSIONS:
            return http_error(400, INVALID_REQUEST, f"Bad Request: Unsupported protocol version: {version}", id_)
        session = self.sessions.get(session_id)
        if session is None:
            return http_error(404, INVALID_REQUEST, "Session not found", id_)
        if not is_request:
            if method == "notifications/initialized":
                session.initialized = True
            return Response(status_code=202)
        if self.switch.draw(SessionExpiry) is not None:
            self.sessions.end(session_id)
            return http_error(404, INVALID_REQUEST, "Session not found", id_)
        self.methods[method] += 1
        fault = self.switch.draw(WrongJsonrpcId, WrongContentType)

        async def answer() -> dict[str, Any]:
            try:
                reply = {"jsonrpc": "2.0", "id": id_, "result": await self.handle(method, params)}
            except RpcError as exc:
                reply = rpc_error(id_, exc.code, exc.message)
            if isinstance(fault, WrongJsonrpcId):
                reply["id"] = other_id(id_)
            return reply
        content_type = fault.content_type if isinstance(fault, WrongContentType) else None
        return await self._reply(method, answer, content_type=content_type)

    async def _initialize(self, id_: Any, params: Any) -> Response:
        if not isinstance(params, dict) or not isinstance(params.get("protocolVersion"), str):
            return JSONResponse(rpc_error(id_, INVALID_PARAMS, "initialize needs params.protocolVersion"))
        self.methods["initialize"] += 1
        result = self.initialize_result(params["protocolVersion"])
        negotiated = params["protocolVersion"] if params["protocolVersion"] in PROTOCOL_VERSIONS else LATEST_VERSION
        session = self.sessions.create(negotiated)

        async def answer() -> dict[str, Any]:
            return {"jsonrpc": "2.0", "id": id_, "result": result}
        return await self._reply("initialize", answer, headers={SESSION_HEADER: session.id})

    async def get(self, request: Request) -> Response:
        return JSONResponse(rpc_error(None, INVALID_REQUEST, "Method Not Allowed: this server opens no SSE stream"),
                            status_code=405, headers={"allow": "POST, DELETE"})

    async def delete(self, request: Request) -> Response:
        if (rejected := _check_origin(request)) is not None:
            return rejected
        session_id = request.headers.get(SESSION_HEADER)
        if not session_id:
            return http_error(400, INVALID_REQUEST, "Bad Request: Missing session ID")
        if self.sessions.get(session_id) is None:
            return http_error(404, INVALID_REQUEST, "Session not found")
        self.sessions.end(session_id)
        return Response(status_code=200)

    # -- health ----------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "replica": self.config.name})

    async def deep_health(self, request: Request) -> Response:
        """Healthy only if initialize, tools/list and a calculator call give results a strict client accepts."""
        problem = await self._self_test()
        if problem is not None:
            return JSONResponse({"status": "failing", "replica": self.config.name, "reason": problem}, 503)
        return JSONResponse({"status": "ok", "replica": self.config.name})

    async def _self_test(self) -> str | None:
        init = self.initialize_result(LATEST_VERSION)
        if init.get("protocolVersion") not in PROTOCOL_VERSIONS:
            return f"initialize answered protocolVersion {init.get('protocolVersion')!r}"
        if not isinstance(init.get("capabilities"), dict) or "tools" not in init["capabilities"]:
            return "initialize answered no tools capability"
        if not isinstance(init.get("serverInfo"), dict):
            return "initialize answered no serverInfo"
        listed = {tool["name"]: tool for tool in self.list_tools()["tools"]}
        if "calculator" not in listed:
            return "tools/list does not list calculator"
        if any(tool["inputSchema"].get("type") != "object" for tool in listed.values()):
            return "tools/list has an inputSchema that is not an object schema"
        result = await self.call_tool({"name": "calculator", "arguments": {"a": 2, "b": 3, "op": "add"}})
        if not isinstance(result.get("content"), list) or result.get("isError"):
            return "tools/call answered without content"
        try:
            if CalculatorOutput.model_validate(result.get("structuredContent")).result != 5:
                return "tools/call answered a wrong result"
        except ValidationError:
            return "tools/call answered structuredContent that violates its outputSchema"
        return None

    # -- assembly ----------------------------------------------------------------------------
    def apps(self) -> FakeApps:
        async def plain_http_error(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, HTTPException)
            response = http_error(exc.status_code, INVALID_REQUEST, f"{request.method} {request.url.path}: {exc.detail}")
            response.headers.update(exc.headers or {})
            return response

        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            if self.initial_fault is not None:
                self.switch.set(self.initial_fault)
            yield

        data = Starlette(
            routes=[
                Route("/mcp", self.post, methods=["POST"]),
                Route("/mcp", self.get, methods=["GET"]),
                Route("/mcp", self.delete, methods=["DELETE"]),
                Route("/health", self.health, methods=["GET"]),
                Route("/health/deep", self.deep_health, methods=["GET"]),
            ],
            middleware=[Middleware(ReplicaMiddleware, stats=self.stats, attempts=self.attempts,
                                   peek_body=lambda method, path: method == "POST" and path == "/mcp",
                                   health_body=lambda method, path, body: is_health_check(body),
                                   on_error=lambda: http_error(500, INTERNAL_ERROR, "Internal error"))],
            exception_handlers={HTTPException: plain_http_error},
            lifespan=lifespan,
        )
        control = create_control_app(self.switch, lambda: {
            **self.stats.as_json(), "sessions": len(self.sessions), "sessions_expired": self.sessions.expired,
            "methods": dict(self.methods)})
        return FakeApps(data=data, control=control)


def is_health_check(body: bytes) -> bool:
    """Whether a POST's body is the gateway's MCP health check: ``initialize`` with its JSON-RPC id."""
    try:
        message = json.loads(body)
    except ValueError:
        return False
    return isinstance(message, dict) and message.get("method") == "initialize" and message.get("id") == HEALTH_CHECK_ID


def _check_origin(request: Request) -> Response | None:
    """Reject requests from a non-local web origin (DNS rebinding); requests without Origin pass."""
    origin = request.headers.get("origin")
    if origin is None or urlsplit(origin).hostname in LOCAL_ORIGINS:
        return None
    return http_error(403, INVALID_REQUEST, f"Forbidden: origin {origin} is not allowed")


def create_apps(config: McpConfig, initial_fault: McpMode | None = None, attempts_file: str | None = None) -> FakeApps:
    """The data and control apps of one replica (all state lives in their McpServer)."""
    return McpServer(config, initial_fault, attempts_file).apps()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fakes.mcp",
                                     description="Fake MCP server (Streamable HTTP) for chaosgate.")
    add_serving_arguments(parser, port_help="data port: /mcp and health")
    parser.add_argument("--session-ttl", type=float, default=600.0, help="seconds a session may stay idle")
    parser.add_argument("--response-format", choices=["json", "sse", "mixed"], default="mixed",
                        help="JSON or SSE answers; mixed: SSE for tools/call, JSON for the rest")
    parser.add_argument("--tool-latency-ms", type=float, default=0.0, help="time each tools/call takes")
    parser.add_argument("--fault", default=None,
                        help='fault mode to start with, as JSON: \'{"mode": "session_expiry"}\'')
    args = parser.parse_args(argv)
    try:
        config = McpConfig(args.name, args.seed, args.session_ttl, args.response_format, args.tool_latency_ms)
        fault = MCP_MODES.validate_json(args.fault) if args.fault else None
        tls = tls_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))  # exits with code 2
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s fakes.mcp {args.name}: %(message)s")
    return serve("fakes.mcp", args.name, create_apps(config, fault, args.attempts_file), args.host, args.port, args.control_port,
                 args.control_host, tls)


if __name__ == "__main__":
    sys.exit(main())
