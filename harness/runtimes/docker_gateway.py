"""The docker runtime's gateway container as the process harness/gateway_watch.py watches.

On the local runtime the watch polls the gateway's ``Popen``. Here the gateway is the main process
of a container, so its end is the engine's ``die`` event for that container: a thread follows the
engine's event stream for it, and ``poll()`` answers the exit status as ``Popen`` would (``-N``
for a process ended by signal N, from Docker's exit code 128+N), so the watch journals
``gateway.exited`` with the same status and signal on both runtimes.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from harness.runtimes.docker_engine import connect
from harness.runtimes.docker_supervisor import exit_status

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container


class GatewayContainer:
    """``pid`` (the gateway's host pid when it started) and ``poll()`` of the gateway's container."""

    def __init__(self, container: Container) -> None:
        self._container = container
        container.reload()
        self.pid: int = int((container.attrs.get("State") or {}).get("Pid") or 0)
        self._status: int | None = None
        self._client: DockerClient | None = None
        self._stream: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Follow the engine's ``die`` events of the container (its own connection to the engine)."""
        client = self._client = connect()
        self._stream = client.events(decode=True, filters={"type": "container", "container": self._container.id,
                                                           "event": "die"})
        self._thread = threading.Thread(target=self._listen, name="docker-gateway-events", daemon=True)
        self._thread.start()
        self._container.reload()  # it died before the stream started
        if self._container.status in ("exited", "dead"):
            self._died((self._container.attrs.get("State") or {}).get("ExitCode"))

    def poll(self) -> int | None:
        """None while the container runs; its main process's exit status once it died."""
        return self._status

    def close(self) -> None:
        if self._stream is not None:
            try:
                self._stream.close()
            except Exception:  # noqa: BLE001 - closing a stream the engine may have ended already
                pass
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        if self._client is not None:
            self._client.close()

    def _listen(self) -> None:
        try:
            for event in self._stream:
                if event.get("Action") == "die":
                    self._died(((event.get("Actor") or {}).get("Attributes") or {}).get("exitCode"))
        except Exception:  # noqa: BLE001 - the stream ends with an error when close() closes it
            pass

    def _died(self, exit_code: object) -> None:
        if self._status is not None:
            return
        if not str(exit_code).lstrip("-").isdigit():  # an event without its exit code: ask the engine
            try:
                self._container.reload()
                exit_code = (self._container.attrs.get("State") or {}).get("ExitCode")
            except Exception:  # noqa: BLE001 - the engine is going away too: "exited with status 1"
                exit_code = 1
        status, _ = exit_status(int(str(exit_code)) if str(exit_code).lstrip("-").isdigit() else 1)
        self._status = status if status is not None else 1
