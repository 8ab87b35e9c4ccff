"""Error responses in Anthropic's shape: ``{"type": "error", "error": {"type", "message"}, "request_id"}``.

The official client maps the status to an exception class (429 RateLimitError, 529 OverloadedError,
other >= 500 InternalServerError, ...); in a stream, an ``error`` event raises APIStatusError.
"""

from __future__ import annotations

import uuid

from starlette.responses import JSONResponse

from fakes.anthropic_modes import AnthropicError
from fakes.retry_after import retry_after, rfc3339

REQUEST_ID_HEADER = "request-id"
# status -> (type, message), as the API words them
STATUS_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "Not found."),
    405: ("invalid_request_error", "Method not allowed."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out."),
    529: ("overloaded_error", "Overloaded"),
}
ERROR_STATUS = {"overloaded_error": 529, "rate_limit_error": 429, "api_error": 500}
RATE_LIMIT_REQUESTS = 50  # the anthropic-ratelimit-requests-limit the fake claims
RATE_LIMIT_TOKENS = 40_000


def new_request_id() -> str:
    return f"req_{uuid.uuid4().hex[:24]}"


def error_body(type_: str, message: str, request_id: str | None = None) -> dict[str, object]:
    return {"type": "error", "error": {"type": type_, "message": message}, "request_id": request_id}


def anthropic_error(status: int, message: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error response with Anthropic's body for ``status`` (its own message unless ``message``)."""
    type_, default = STATUS_ERRORS.get(status, ("api_error", f"Error {status}."))
    request_id = new_request_id()
    return JSONResponse(error_body(type_, message or default, request_id), status_code=status,
                        headers={REQUEST_ID_HEADER: request_id, **(headers or {})})


def rate_limit_headers(remaining: int, reset_s: float) -> dict[str, str]:
    """The ``anthropic-ratelimit-*`` headers: requests and tokens, their limits, what is left, when they reset."""
    reset = rfc3339(reset_s)
    return {"anthropic-ratelimit-requests-limit": str(RATE_LIMIT_REQUESTS),
            "anthropic-ratelimit-requests-remaining": str(remaining),
            "anthropic-ratelimit-requests-reset": reset,
            "anthropic-ratelimit-tokens-limit": str(RATE_LIMIT_TOKENS),
            "anthropic-ratelimit-tokens-remaining": str(RATE_LIMIT_TOKENS if remaining else 0),
            "anthropic-ratelimit-tokens-reset": reset}


def provider_error(mode: AnthropicError) -> JSONResponse:
    """The response of an ``anthropic_error`` mode: status, body and headers as the API sends them."""
    status = ERROR_STATUS[mode.error]
    headers: dict[str, str] = {}
    if mode.error == "rate_limit_error":
        headers |= rate_limit_headers(0, mode.retry_after if mode.retry_after is not None else 60.0)
    if mode.retry_after is not None:
        headers |= retry_after(mode.retry_after, mode.retry_after_format)
    return anthropic_error(status, headers=headers)
