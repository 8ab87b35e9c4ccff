"""One bounded MCP session with the official ``mcp`` client, every step's outcome classified.

A session is what an agent does with a tool server: connect (``server/discover``, then the
``initialize`` handshake), ``tools/list``, then ``tools/call`` of the calculator, checked as strictly
as the client checks (``InitializeResult``, ``ListToolsResult`` and ``CallToolResult`` schemas, the
tool's ``outputSchema``) plus what an agent needs: the tool is listed and the answer is right.

Used by the load's mcp persona (harness/load/mcp_worker.py), one record per step in the journal,
and by ``chaosgate diagnose``: ``check_mcp_server(url)`` says, step by step, what a strict client sees
from one server (or through the gateway). Every wait is bounded: each request by ``timeout``, the
whole session by ``timeout`` per step.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import asdict, dataclass
from typing import Any

import anyio
import httpx2
import pydantic
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

REPLICA_HEADER = "x-chaosgate-replica"    # stamped by the fakes on every answer
UPSTREAM_HEADER = "x-chaosgate-upstream"  # stamped by the harness's gateway: the address it picked
REQUEST_ID_HEADER = "x-chaosgate-request"  # the load's id of a step, logged by the fakes with each attempt
EXPECTED_TOOL = "calculator"
REQUEST_TIMEOUT_CODE = -32001  # mcp 2.x: a request whose answer did not come within the read timeout

# The JSON-RPC method whose HTTP answer tells which replica served a step (and with which status).
_STEP_METHODS = {"initialize": ("initialize", "server/discover"), "tools/list": ("tools/list",),
                 "tools/call": ("tools/call",)}
_OPS = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b}


@dataclass(frozen=True)
class StepOutcome:
    """How one step of a session ended, as seen by the client."""

    step: str                 # initialize, tools/list or tools/call
    started: float            # Unix time
    latency: float            # seconds
    error: str | None         # None, or: schema, tool_error, mcp_error, http_4xx, http_5xx, timeout, connect, reset
    message: str | None       # what the client said (exception type and text), for errors
    status: int | None        # HTTP status of the step's answer, None if none came
    replica: str | None       # the replica that answered (its identity header)
    upstream: str | None      # the address the gateway sent it to (the gateway's header)
    request_id: str | None = None  # sent as x-chaosgate-request with every HTTP request of the step

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class McpStepFailed(Exception):
    """The server answered, validly as far as the client checks, but not what an agent needs."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class _Answers:
    """An httpx response hook: the last HTTP answer to each JSON-RPC method of the session."""

    def __init__(self) -> None:
        self.by_method: dict[str, httpx2.Response] = {}

    async def __call__(self, response: httpx2.Response) -> None:
        if response.request.method != "POST":
            return
        try:
            method = json.loads(response.request.content).get("method")
        except (ValueError, AttributeError, httpx2.RequestNotRead):
            return
        if isinstance(method, str):
            self.by_method[method] = response

    def forget(self, step: str) -> None:
        for method in _STEP_METHODS[step]:
            self.by_method.pop(method, None)

    def of(self, step: str) -> httpx2.Response | None:
        return next((self.by_method[m] for m in _STEP_METHODS[step] if m in self.by_method), None)


def leaf(exc: BaseException) -> BaseException:
    """The first real exception inside the ExceptionGroups the SDK's task groups wrap it in."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def classify(exc: BaseException, status: int | None) -> str:
    """A short error kind for what the client raised (``status``: the HTTP answer, if one came)."""
    if isinstance(exc, McpStepFailed):
        return exc.kind
    if status is not None and status >= 400:
        return "http_5xx" if status >= 500 else "http_4xx"
    if isinstance(exc, (TimeoutError, httpx2.TimeoutException)) or (
            isinstance(exc, MCPError) and exc.code == REQUEST_TIMEOUT_CODE):
        return "timeout"
    if isinstance(exc, httpx2.ConnectError):
        return "connect"
    if isinstance(exc, (httpx2.TransportError, ConnectionError)):
        return "reset"
    if isinstance(exc, (pydantic.ValidationError, RuntimeError)):
        return "schema"  # a result that fails the client's schema, protocol-version or outputSchema checks
    if isinstance(exc, MCPError):
        return "mcp_error"
    return "error"


def _describe(exc: BaseException) -> str:
    """The exception in one line: ``ValidationError: InitializeResult.capabilities: Field required``."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    if isinstance(exc, MCPError):
        text = f"{exc.code} {exc.message}"
    elif isinstance(exc, pydantic.ValidationError) and exc.errors():
        first = exc.errors()[0]
        where = ".".join(str(part) for part in (exc.title, *first["loc"]))
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        text = f"{where}: {first['msg']}{more}"
    return f"{type(exc).__name__}: {text}"[:300]


def _arguments(rng: random.Random) -> tuple[dict[str, Any], float]:
    a, b, op = rng.randint(1, 99), rng.randint(1, 99), rng.choice(sorted(_OPS))
    return {"a": a, "b": b, "op": op}, float(_OPS[op](a, b))


async def mcp_session(url: str, *, timeout: float, tool_calls: int = 1, rng: random.Random | None = None,
                      headers: dict[str, str] | None = None, request_id: str | None = None) -> list[StepOutcome]:
    """Run one session against ``url`` (an MCP endpoint); one outcome per step reached.

    The session stops at the first failed step. ``timeout`` bounds each request (the client's
    read timeout) and, times the number of steps, the whole session. With ``request_id``, every
    HTTP request of step *n* (0: initialize) carries ``x-chaosgate-request: <request_id>.<n>``.
    """
    rng = rng or random.Random(0)
    answers = _Answers()
    outcomes: list[StepOutcome] = []
    step, began, wall = "initialize", time.perf_counter(), time.time()
    step_number = 0

    def step_id() -> str | None:
        return f"{request_id}.{step_number}" if request_id is not None else None

    async def stamp(request: httpx2.Request) -> None:
        if (current := step_id()) is not None:
            request.headers[REQUEST_ID_HEADER] = current

    def finish(error: BaseException | None) -> None:
        answer = answers.of(step)
        status = answer.status_code if answer is not None else None
        outcomes.append(StepOutcome(
            step=step, started=wall, latency=time.perf_counter() - began,
            error=None if error is None else classify(error, status),
            message=None if error is None else _describe(error), status=status,
            replica=answer.headers.get(REPLICA_HEADER) if answer is not None else None,
            upstream=answer.headers.get(UPSTREAM_HEADER) if answer is not None else None, request_id=step_id()))

    def start(name: str) -> None:
        nonlocal step, began, wall, step_number
        step, began, wall = name, time.perf_counter(), time.time()
        step_number += 1
        answers.forget(name)

    http = httpx2.AsyncClient(headers=headers, event_hooks={"request": [stamp], "response": [answers]},
                              timeout=httpx2.Timeout(timeout), follow_redirects=False)
    done = False
    try:
        with anyio.fail_after(timeout * (tool_calls + 3)):
            async with http, Client(streamable_http_client(url, http_client=http), read_timeout_seconds=timeout) as client:
                finish(None)
                start("tools/list")
                listed = [tool.name for tool in (await client.list_tools()).tools]
                if EXPECTED_TOOL not in listed:
                    raise McpStepFailed("schema", f"tools/list does not list {EXPECTED_TOOL} (listed: {listed})")
                finish(None)
                for _ in range(tool_calls):
                    start("tools/call")
                    arguments, expected = _arguments(rng)
                    result = await client.call_tool(EXPECTED_TOOL, arguments)
                    if result.is_error:
                        raise McpStepFailed("tool_error", f"{EXPECTED_TOOL} answered isError: {result.content}"[:300])
                    got = (result.structured_content or {}).get("result")
                    if got != expected:
                        raise McpStepFailed("schema", f"{EXPECTED_TOOL}{arguments} answered {got!r}, expected {expected}")
                    finish(None)
                done = True
    except (KeyboardInterrupt, SystemExit, asyncio.CancelledError):
        raise
    except BaseException as exc:  # noqa: BLE001 - what the client raised is the observation
        if not done:  # an error while closing a finished session (the DELETE) is not a step's failure
            finish(leaf(exc))
    return outcomes


def check_mcp_server(url: str, timeout: float = 5.0, tool_calls: int = 1,
                     headers: dict[str, str] | None = None) -> list[StepOutcome]:
    """One session against ``url`` from synchronous code (e.g. ``chaosgate diagnose``)."""
    return asyncio.run(mcp_session(url, timeout=timeout, tool_calls=tool_calls, headers=headers))
