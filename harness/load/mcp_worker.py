"""The mcp persona's load process: ``python -m harness.load.mcp_worker CONFIG_JSON``.

Each of ``mcp_users`` users runs MCP sessions with the official ``mcp`` client through the gateway,
one after another (harness/mcp_check.py: connect, tools/list, then MCP_TOOL_CALLS calculator calls),
pausing ``wait`` between sessions. A process of its own, on asyncio: the Locust process runs on
gevent, which the SDK's anyio/asyncio code must not share.

Same protocol on stdio as the Locust process (harness/load/worker.py): ``{"event": "ready"}``, then
it waits for a line on stdin, runs for ``duration`` seconds, prints one ``{"event": "request", ...}``
per session step (kinds ``mcp_initialize``, ``mcp_tools_list``, ``mcp_tools_call``), then
``{"event": "done", ...}``. Bounded: users start at ``spawn_rate``, no session starts after
``duration``, sessions still running ``request_timeout`` later are cancelled (not recorded), and no
user runs more than MAX_SESSIONS_PER_USER sessions.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from harness.load.config import LoadConfig
from harness.mcp_check import StepOutcome, mcp_session

MCP_TOOL_CALLS = 2
MAX_SESSIONS_PER_USER = 100_000


def emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def request_record(outcome: StepOutcome) -> dict[str, Any]:
    """One session step as the journal's ``request`` event (the fields the Locust process sends)."""
    record: dict[str, Any] = {
        "event": "request", "ts": outcome.started, "id": outcome.request_id, "kind": "mcp_" + outcome.step.replace("/", "_"),
        "latency": outcome.latency, "status": outcome.status, "bytes": 0, "error": outcome.error,
        "replica": outcome.replica, "upstream": outcome.upstream}
    if outcome.error is not None and outcome.message:
        record["body"] = outcome.message
    return record


async def run_user(index: int, config: LoadConfig, deadline: float, report: Callable[[dict[str, Any]], None]) -> int:
    """Sessions one after another until ``deadline`` (monotonic); returns how many ran."""
    assert config.mcp_path is not None
    url = f"{config.host}{config.mcp_path}"
    rng = random.Random(config.seed * 1000 + index)
    sessions = 0
    while time.monotonic() < deadline and sessions < MAX_SESSIONS_PER_USER:
        request_id = f"mcp{index}-{sessions + 1}"  # step n of the session: <request_id>.<n> (harness/mcp_check.py)
        for outcome in await mcp_session(url, timeout=config.request_timeout, tool_calls=MCP_TOOL_CALLS, rng=rng,
                                         request_id=request_id):
            report(request_record(outcome))
        sessions += 1
        await asyncio.sleep(config.wait)  # also yields to the other users when wait is 0
    return sessions


async def run_load(config: LoadConfig, report: Callable[[dict[str, Any]], None]) -> dict[str, int]:
    """All users, spawned at ``spawn_rate``, for ``duration`` seconds (plus the grace to finish)."""
    counts = {"requests": 0, "failures": 0}

    def counted(record: dict[str, Any]) -> None:
        counts["requests"] += 1
        counts["failures"] += record["error"] is not None
        report(record)

    start = time.monotonic()
    deadline = start + config.duration

    async def user(index: int) -> int:
        await asyncio.sleep(index / config.spawn_rate)
        return await run_user(index, config, deadline, counted)

    tasks = [asyncio.create_task(user(i)) for i in range(config.mcp_users)]
    _, pending = await asyncio.wait(tasks, timeout=config.duration + config.request_timeout)
    for task in pending:  # a session still running past the grace: cut, as Locust cuts its users
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return counts


async def _main(config: LoadConfig) -> dict[str, int]:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await run_load(config, emit)


def main() -> None:
    config = LoadConfig.model_validate_json(sys.argv[1])
    logging.basicConfig(level=logging.ERROR)  # the SDK logs every failed session at WARNING
    emit({"event": "ready"})
    line = sys.stdin.readline()
    if not line:  # the harness closed stdin: it is gone, do nothing
        return
    config = config.aimed(line)  # the gateway's address, known only once the stack is up
    try:
        counts = asyncio.run(_main(config))
    except asyncio.CancelledError:  # SIGTERM
        counts = {}
    emit({"event": "done", **counts})
    # Everything is said (emit flushes): exit now, not after the interpreter's 0.1 s of finalization, which
    # the run would wait for.
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
