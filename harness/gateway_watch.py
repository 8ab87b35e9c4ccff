"""Journals the gateway process's exit while a run drives it, as the supervisor does for replicas.

A gateway that dies in the middle of a run otherwise shows up only as refused connections (and a
health observer that cannot reach it). The watch polls the process every ``POLL_S`` seconds and,
the moment it has ended, journals ``gateway.exited`` (pid, exit status, the signal that ended it)
once. The run then fails with ``GatewayExited``, whose message says so. The watch is stopped
before teardown, so the harness's own SIGTERM at the end of a run is not journalled as an exit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from harness.errors import StackError
from harness.supervisor import signal_name

POLL_S = 0.02


class GatewayProcess(Protocol):
    """What the watch needs of the gateway's process (``subprocess.Popen`` has it)."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...


class GatewayExited(StackError):
    """The gateway process ended during the run."""


class GatewayWatch:
    """A background thread; ``exit`` is the journalled event once the gateway has exited."""

    def __init__(self, kind: str, process: GatewayProcess, record: Callable[..., Any], log: str = "",
                 interval: float = POLL_S) -> None:
        self._kind = kind
        self._process = process
        self._record = record
        self._log = log
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gateway-watch", daemon=True)
        self.exit: dict[str, Any] | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            status = self._process.poll()
            if status is not None:
                self.exit = self._record("gateway.exited", gateway=self._kind, pid=self._process.pid,
                                         status=status, signal=signal_name(status), log=self._log)
                return
            self._stop.wait(self._interval)

    def check(self) -> None:
        """Raise GatewayExited if the gateway ended during the run."""
        if self.exit is None:
            return
        how = f"was killed by {self.exit['signal']}" if self.exit["signal"] else f"exited with status {self.exit['status']}"
        raise GatewayExited(f"the gateway ({self._kind}, pid {self.exit['pid']}) {how} during the run"
                            + (f" (its log: {self._log})" if self._log else ""))
