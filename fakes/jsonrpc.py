"""JSON-RPC 2.0 messages of the fake MCP server: error codes, error answers, ids."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = -32700, -32600, -32601, -32602, -32603


class RpcError(Exception):
    """A JSON-RPC error answer to a request."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def rpc_error(id_: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "error": {"code": code, "message": message}}


def http_error(status: int, code: int, message: str, id_: Any = None) -> JSONResponse:
    """A transport-level rejection: an HTTP error status with a JSON-RPC error body."""
    return JSONResponse(rpc_error(id_, code, message), status_code=status)


def valid_id(id_: Any) -> bool:
    """Request ids are strings or integers (never null, never a boolean)."""
    return isinstance(id_, str) or (isinstance(id_, int) and not isinstance(id_, bool))


def other_id(id_: Any) -> Any:
    """An id that is not ``id_`` (for the wrong_jsonrpc_id fault)."""
    return id_ + 1_000_000 if isinstance(id_, int) else f"not-{id_}"
