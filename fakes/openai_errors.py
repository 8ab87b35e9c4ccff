"""Error responses in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.

The official clients map the status to an exception class (429 RateLimitError, >= 500
InternalServerError, ...) and read ``type``, ``param`` and ``code`` from the body.
"""

from __future__ import annotations

import math

from starlette.responses import JSONResponse

from fakes.llm_modes import OpenaiError
from fakes.retry_after import go_duration, retry_after

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


# OpenaiError's errors: (status, type, code, message), worded as the API words them.
PROVIDER_ERRORS: dict[str, tuple[int, str, str | None, str]] = {
    "rate_limit_exceeded": (429, "requests", "rate_limit_exceeded",
                            "Rate limit reached for requests on requests per min (RPM): Limit 500, Used 500, "
                            "Requested 1. Please try again in {wait}."),
    "insufficient_quota": (429, "insufficient_quota", "insufficient_quota",
                           "You exceeded your current quota, please check your plan and billing details."),
    "server_error": (500, "server_error", None,
                     "The server had an error while processing your request. Sorry about that!"),
    "overloaded": (503, "service_unavailable_error", "server_is_overloaded",
                   "The server is overloaded or not ready yet."),
}
RATE_LIMIT_REQUESTS = 500  # the x-ratelimit-limit-requests the fake claims


def provider_error(mode: OpenaiError) -> JSONResponse:
    """The response of an ``openai_error`` mode: status, body and headers as the API sends them."""
    status, type_, code, message = PROVIDER_ERRORS[mode.error]
    headers: dict[str, str] = {}
    wait = mode.retry_after
    if mode.error == "rate_limit_exceeded":
        reset = wait if wait is not None else 60.0 / RATE_LIMIT_REQUESTS
        headers |= {"x-ratelimit-limit-requests": str(RATE_LIMIT_REQUESTS), "x-ratelimit-remaining-requests": "0",
                    "x-ratelimit-reset-requests": go_duration(reset)}
        message = message.format(wait=go_duration(reset))
    if wait is not None and mode.error != "insufficient_quota":
        headers |= retry_after(wait, mode.retry_after_format, with_ms=True)
    return openai_error(status, message, type_, code=code, headers=headers)
