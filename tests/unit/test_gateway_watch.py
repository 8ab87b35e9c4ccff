"""The gateway's exit is journalled once, with its signal or status, and fails the run (harness/gateway_watch.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from harness.gateway_watch import POLL_S, GatewayExited, GatewayWatch

DEADLINE = 5.0  # the watch polls every POLL_S; a process reaped within milliseconds


@pytest.fixture
def process() -> Iterator[subprocess.Popen[bytes]]:
    """A real process standing in for a gateway (it would run far longer than any test)."""
    child = subprocess.Popen([sys.executable, "-c", "import sys, time; time.sleep(60); sys.exit(3)"])
    yield child
    if child.poll() is None:
        child.kill()
    child.wait()


def _until(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(POLL_S)
    pytest.fail(f"timed out after {DEADLINE:g}s waiting for {what}")


def _recorder(events: list[dict[str, Any]]) -> Any:
    def record(type: str, **fields: Any) -> dict[str, Any]:
        event = {"type": type, "ts": time.time(), **fields}
        events.append(event)
        return event
    return record


def test_a_killed_gateway_is_journalled_with_its_signal(process: subprocess.Popen[bytes]) -> None:
    events: list[dict[str, Any]] = []
    watch = GatewayWatch("litellm", process, _recorder(events), log="/run/logs/litellm.log")
    watch.start()
    watch.check()  # running: nothing to say
    killed_at = time.time()
    process.send_signal(signal.SIGKILL)
    _until(lambda: watch.exit is not None, "the watch to see the exit")
    watch.stop()
    assert [e["type"] for e in events] == ["gateway.exited"]
    event = events[0]
    assert (event["gateway"], event["pid"], event["status"], event["signal"]) == ("litellm", process.pid, -9, "SIGKILL")
    assert killed_at <= event["ts"] <= killed_at + DEADLINE
    with pytest.raises(GatewayExited, match=r"the gateway \(litellm, pid \d+\) was killed by SIGKILL during the run "
                                            r"\(its log: /run/logs/litellm.log\)"):
        watch.check()


def test_an_exit_status_is_named() -> None:
    events: list[dict[str, Any]] = []
    process = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    watch = GatewayWatch("envoy", process, _recorder(events))
    watch.start()
    _until(lambda: watch.exit is not None, "the watch to see the exit")
    watch.stop()
    assert events[0]["status"] == 3 and events[0]["signal"] is None
    with pytest.raises(GatewayExited, match=r"exited with status 3 during the run$"):
        watch.check()


def test_a_stopped_watch_journals_nothing(process: subprocess.Popen[bytes]) -> None:
    """Teardown stops the watch before it ends the gateway: that SIGTERM is not an exit to report."""
    events: list[dict[str, Any]] = []
    watch = GatewayWatch("envoy", process, _recorder(events))
    watch.start()
    watch.stop()
    process.terminate()
    process.wait(timeout=DEADLINE)
    assert events == [] and watch.exit is None
    watch.check()
