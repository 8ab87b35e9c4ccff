"""Error responses in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.

The official clients map the status to an exception class (429 RateLimitError, >= 500
InternalServerError, ...) and read ``type``, ``param`` and ``code`` from the body.
"""

from __future__ import annotations

import math

from starlette.responses import JSONResponse

# status -> (type, code, message), as the real API words them
STATUS_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Bad request."),
    429: ("rate_limit_error", "rate_limit_exceeded",
          "Rate limit reached for requests. Please try again in a moment."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", "bad_gateway", "Bad gateway."),
    503: ("service_unavailable_error", "server_is_overloaded", "The server is overloaded or not ready yet."),
    504: ("server_error", "timeout", "The server timed out while processing your request."),
}


def openai_error(status: int, message: str, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> JSONResponse:
    """An error response with OpenAI's body."""
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def status_error(status: int, retry_after: float | None = None) -> JSONResponse:
    """The error the real API sends with ``status``; ``retry-after`` (whole seconds, rounded up)
    and ``retry-after-ms`` when ``retry_after`` is given."""
    type_, code, message = STATUS_ERRORS.get(status, ("server_error", None, f"Error {status}."))
    headers = None
    if retry_after is not None:
        headers = {"retry-after": str(math.ceil(retry_after)), "retry-after-ms": str(round(retry_after * 1000))}
    return openai_error(status, message, type_, code=code, headers=headers)
