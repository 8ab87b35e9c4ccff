"""MCP layer (pools that serve MCP over Streamable HTTP): the handshake a strict client makes,
over raw JSON-RPC so every deviation is evidence: initialize (protocol version, capabilities,
serverInfo), notifications/initialized, tools/list (each inputSchema an object schema),
tools/call of one tool (content, structuredContent against its outputSchema), with the
session header, content types and JSON-RPC ids checked on every answer."""

from __future__ import annotations

import json
from typing import Any

import httpx

from harness.diagnose.base import (
    LayerResult, ProbeSettings, ProbeTarget, fail, http_client, ok, request_extensions, short, transport_failure,
)

SUPPORTED_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
REQUESTED_VERSION = "2025-06-18"
MAX_TOOL_CALLS = 3  # bounded: the first tools listed are called once each
_JSON_TYPES: dict[str, tuple[type, ...]] = {"number": (int, float), "integer": (int,), "string": (str,),
                                            "boolean": (bool,), "object": (dict,), "array": (list,)}


class McpProblem(Exception):
    """A deviation found in the handshake: the cause and its evidence."""

    def __init__(self, cause: str, evidence: str) -> None:
        super().__init__(evidence)
        self.cause = cause
        self.evidence = evidence


def _message(response: httpx.Response, method: str, id_: int) -> dict[str, Any]:
    kind = response.headers.get("content-type", "")
    if response.status_code == 404:
        raise McpProblem("mcp_session", f"{method} → 404: {short(response.text, 100)!r} (session not found)")
    if response.status_code != 200:
        raise McpProblem("mcp_schema_mismatch", f"{method} → HTTP {response.status_code}: {short(response.text, 100)!r}")
    if kind.startswith("text/event-stream"):
        frames = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
        if not frames:
            raise McpProblem("mcp_schema_mismatch", f"{method}: an SSE answer without a data frame")
        text = frames[-1]
    elif kind.startswith("application/json"):
        text = response.text
    else:
        raise McpProblem("wrong_content_type", f"{method} → 200 with content-type {kind!r}; MCP answers "
                         "application/json or text/event-stream")
    try:
        message = json.loads(text)
    except ValueError:
        raise McpProblem("mcp_schema_mismatch", f"{method}: the answer is not JSON: {short(text, 80)!r}") from None
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        raise McpProblem("mcp_schema_mismatch", f"{method}: not a JSON-RPC 2.0 message: {short(text, 80)!r}")
    if message.get("id") != id_:
        raise McpProblem("mcp_schema_mismatch", f"{method}: the answer carries JSON-RPC id {message.get('id')!r}, "
                         f"the request had {id_!r}")
    if "error" in message:
        raise McpProblem("mcp_schema_mismatch", f"{method}: JSON-RPC error {message['error']}")
    result = message.get("result")
    if not isinstance(result, dict):
        raise McpProblem("mcp_schema_mismatch", f"{method}: no result object")
    return result


def _arguments(schema: dict[str, Any]) -> dict[str, Any]:
    """The smallest arguments a tool's inputSchema accepts (required properties only)."""
    sample: dict[str, Any] = {"number": 1, "integer": 1, "string": "x", "boolean": True, "object": {}, "array": []}
    props = schema.get("properties") or {}
    args: dict[str, Any] = {}
    for name in schema.get("required") or []:
        prop = props.get(name) or {}
        args[name] = prop["enum"][0] if prop.get("enum") else sample.get(str(prop.get("type")), "x")
    return args


def _violations(value: Any, schema: dict[str, Any]) -> list[str]:
    """Top-level type violations of ``value`` against an object ``schema`` (what a strict client checks first)."""
    if not isinstance(value, dict):
        return [f"structuredContent is {type(value).__name__}, not an object"]
    found = []
    for name, prop in (schema.get("properties") or {}).items():
        wanted = _JSON_TYPES.get(str(prop.get("type")))
        if name in value and wanted and (not isinstance(value[name], wanted) or
                                         (bool not in wanted and isinstance(value[name], bool))):
            found.append(f"{name} is {type(value[name]).__name__}, the outputSchema says {prop.get('type')}")
    found += [f"{name} is missing" for name in schema.get("required") or [] if name not in value]
    return found


class McpLayer:
    name = "mcp"

    def applies(self, target: ProbeTarget) -> bool:
        return target.cluster.kind == "mcp"

    def probe(self, target: ProbeTarget, settings: ProbeSettings) -> LayerResult:
        try:
            with http_client(target, settings.inference_timeout) as client:
                return self._handshake(client, target, settings)
        except McpProblem as problem:
            return fail(self.name, problem.cause, problem.evidence)
        except httpx.TimeoutException:
            return fail(self.name, "no_response", f"no MCP answer within {settings.inference_timeout:g}s")
        except httpx.HTTPError as exc:
            cause = transport_failure(exc) or ("wrong_protocol", f"{type(exc).__name__}: {exc}")
            return fail(self.name, cause[0], f"MCP: {cause[1]}")

    def _handshake(self, client: httpx.Client, target: ProbeTarget, settings: ProbeSettings) -> LayerResult:
        hc = target.cluster.health_check
        speaks_mcp = hc is not None and hc.send is not None and '"initialize"' in hc.send
        url = target.url(hc.path if hc is not None and speaks_mcp else settings.mcp_path)
        headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
        ext = request_extensions(target)

        def call(method: str, id_: int | None, params: dict[str, Any]) -> httpx.Response:
            body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
            if id_ is not None:
                body["id"] = id_
            return client.post(url, json=body, headers=headers, extensions=ext)

        first = call("initialize", 1, {"protocolVersion": REQUESTED_VERSION, "capabilities": {},
                                       "clientInfo": {"name": "chaosgate-diagnose", "version": "1"}})
        init = _message(first, "initialize", 1)
        version = init.get("protocolVersion")
        if version not in SUPPORTED_VERSIONS:
            raise McpProblem("mcp_protocol_version", f"initialize: the server answered protocolVersion {version!r}; "
                             f"this client speaks {', '.join(SUPPORTED_VERSIONS)}")
        if not isinstance(init.get("capabilities"), dict):
            raise McpProblem("mcp_schema_mismatch", "initialize: the InitializeResult has no capabilities object")
        server = init.get("serverInfo")
        if not isinstance(server, dict) or not isinstance(server.get("name"), str):
            raise McpProblem("mcp_schema_mismatch", "initialize: the InitializeResult has no serverInfo.name")
        headers["mcp-protocol-version"] = str(version)
        if session := first.headers.get("mcp-session-id"):
            headers["mcp-session-id"] = session
        try:
            result = self._tools(call, init, str(version), str(server["name"]))
            if missing := target.notes.get("receive_missing"):
                return fail(self.name, "health_check_misconfigured", f"the MCP handshake is correct ({result.evidence}), "
                            f"yet the gateway's health check requires {missing[0]!r} in the answer to initialize, "
                            "which a correct server need not send")
            return result
        finally:
            if session:
                try:
                    client.delete(url, headers=headers, extensions=ext)
                except httpx.HTTPError:
                    pass  # the session expires on its own

    def _tools(self, call: Any, init: dict[str, Any], version: str, server: str) -> LayerResult:
        done = call("notifications/initialized", None, {})
        if done.status_code == 404:
            raise McpProblem("mcp_session", f"notifications/initialized → 404 {short(done.text, 80)!r} (session not found)")
        if "tools" not in init["capabilities"]:
            return ok(self.name, f"initialize ok ({server}, {version}); no tools capability to check")
        listed = _message(call("tools/list", 2, {}), "tools/list", 2)
        tools = listed.get("tools")
        if not isinstance(tools, list) or not tools:
            raise McpProblem("mcp_schema_mismatch", f"tools/list: no tools listed ({short(json.dumps(listed), 80)}) "
                             "although the server declares the tools capability")
        for tool in tools:
            schema = tool.get("inputSchema") if isinstance(tool, dict) else None
            if not isinstance(schema, dict) or schema.get("type") != "object":
                name = tool.get("name") if isinstance(tool, dict) else tool
                raise McpProblem("mcp_schema_mismatch", f"tools/list: {name!r} has inputSchema {schema!r}; "
                                 "MCP requires an object schema")
        called = []
        for number, tool in enumerate(tools[:MAX_TOOL_CALLS], start=3):
            result = _message(call("tools/call", number, {"name": tool["name"],
                                                         "arguments": _arguments(tool["inputSchema"])}),
                              "tools/call", number)
            if not isinstance(result.get("content"), list):
                raise McpProblem("mcp_schema_mismatch", f"tools/call {tool['name']}: the CallToolResult has no "
                                 f"content list: {short(json.dumps(result), 80)}")
            if isinstance(tool.get("outputSchema"), dict) and not result.get("isError"):
                wrong = _violations(result.get("structuredContent"), tool["outputSchema"])
                if wrong:
                    raise McpProblem("mcp_schema_mismatch", f"tools/call {tool['name']}: structuredContent violates "
                                     f"the outputSchema: {'; '.join(wrong[:3])}")
            called.append(str(tool["name"]))
        return ok(self.name, f"initialize ({server}, {version}), tools/list ({len(tools)} tools), "
                  f"tools/call {', '.join(called)}: ok")
