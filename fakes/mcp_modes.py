"""The schema-mismatch fault modes of the fake MCP server and their parameters.

One mode is active at a time (``PUT /fault`` on the control port); each hits the requests it
applies to with probability ``rate``, drawn from the replica's seeded generator. The harness's
``mcp_fault`` kind (harness/faults/mcp_mode.py) is built from these same models.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from fakes.mcp_tools import TOOL_NAMES

ToolName = Literal["lookup", "calculator"]
assert set(TOOL_NAMES) == set(ToolName.__args__)  # type: ignore[attr-defined]


class _Mode(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    rate: float = Field(default=1.0, ge=0.0, le=1.0,
                        description="Probability that a request the mode applies to is hit (seeded, per request).")


class UnsupportedProtocolVersion(_Mode):
    """``initialize`` answers a ``protocolVersion`` the client does not support."""

    mode: Literal["unsupported_protocol_version"]
    version: str = Field(default="1999-01-01", min_length=1, description="The protocolVersion sent.")


class MissingCapabilities(_Mode):
    """The ``InitializeResult`` has no ``capabilities``."""

    mode: Literal["missing_capabilities"]


class MissingServerInfo(_Mode):
    """The ``InitializeResult`` has no ``serverInfo``."""

    mode: Literal["missing_server_info"]


class InputSchemaNotObject(_Mode):
    """In ``tools/list``, ``tool``'s ``inputSchema`` is ``{"type": "string"}`` instead of an object schema."""

    mode: Literal["input_schema_not_object"]
    tool: ToolName = Field(default="calculator", description="The tool whose inputSchema is broken.")


class ResultWithoutContent(_Mode):
    """A ``tools/call`` result has no ``content``."""

    mode: Literal["result_without_content"]


class StructuredContentMismatch(_Mode):
    """A ``tools/call`` result's ``structuredContent`` violates the tool's ``outputSchema`` (every value's type is wrong)."""

    mode: Literal["structured_content_mismatch"]


class WrongJsonrpcId(_Mode):
    """Responses to requests after ``initialize`` carry another JSON-RPC ``id`` than the request's."""

    mode: Literal["wrong_jsonrpc_id"]


class WrongContentType(_Mode):
    """Responses to requests after ``initialize`` carry this ``content-type`` (body unchanged)."""

    mode: Literal["wrong_content_type"]
    content_type: str = Field(default="text/plain; charset=utf-8", min_length=1, description="The content-type sent.")


class SessionExpiry(_Mode):
    """Every request carrying a session finds it expired: the session ends and the answer is 404."""

    mode: Literal["session_expiry"]


class ToolsDisappear(_Mode):
    """``tools/list`` leaves out ``tools`` (every tool when null); calling them still works."""

    mode: Literal["tools_disappear"]
    tools: list[ToolName] | None = Field(default=None, description="The tools left out; null: all of them.")


MCP_MODE_MODELS: tuple[type[BaseModel], ...] = (
    UnsupportedProtocolVersion, MissingCapabilities, MissingServerInfo, InputSchemaNotObject, ResultWithoutContent,
    StructuredContentMismatch, WrongJsonrpcId, WrongContentType, SessionExpiry, ToolsDisappear,
)
McpMode = Annotated[
    Union[UnsupportedProtocolVersion, MissingCapabilities, MissingServerInfo, InputSchemaNotObject,  # noqa: UP007
          ResultWithoutContent, StructuredContentMismatch, WrongJsonrpcId, WrongContentType, SessionExpiry,
          ToolsDisappear],
    Field(discriminator="mode"),
]
MCP_MODES: TypeAdapter[McpMode] = TypeAdapter(McpMode)
