"""Drives the Locust worker process and copies every request it reports into the journal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import StackError
from harness.journal import JournalWriter
from harness.load.config import LoadConfig
from harness import leftovers
from harness.load.master import LOOPBACK
from harness.processes import die_with_parent, free_port

if TYPE_CHECKING:
    from harness.gateways.base import LoadTarget

READY_TIMEOUT = 30.0


class LoadGenerator:
    """The load processes: Locust for the openai personas, harness.load.mcp_worker for the mcp persona
    (each only if it has users). ``start`` blocks until they are ready (``spawn`` then ``wait_ready``: a run
    spawns them before the stack comes up), ``go`` starts the load at the gateway's address."""

    def __init__(self, config: LoadConfig, journal: JournalWriter, log_dir: Path,
                 env: dict[str, str] | None = None, announce: Callable[[str], None] | None = None) -> None:
        self.config = config
        self._announce = announce or (lambda line: None)
        self.journal = journal
        self._log_dir = log_dir
        self._env = env or {}
        self._processes: list[subprocess.Popen[bytes]] = []
        self._readers: list[threading.Thread] = []
        self._ready: list[tuple[str, str, subprocess.Popen[bytes], threading.Event]] = []  # module, log, process, ready
        self._lock = threading.Lock()
        self.requests = 0
        self.failures = 0
        self._recent: deque[tuple[float, bool]] = deque()
        self.summary: dict[str, int] = {}
        self.error: str | None = None              # what a load process said went wrong before it was ready
        self.lost: list[dict[str, Any]] = []       # distributed workers that died mid-run (harness/load/master.py)

    def _workers(self) -> list[tuple[str, str]]:
        """(module, log file name) of each load process this config needs."""
        workers = []
        if self.config.users > 0:  # a Locust master and its workers (docs/distributed.md), or one Locust process
            workers.append(("harness.load.master" if self.config.distributed else "harness.load.worker", "locust.log"))
        if self.config.mcp_users > 0:
            workers.append(("harness.load.mcp_worker", "mcp-load.log"))
        return workers

    def start(self) -> None:
        """Start the workers and wait until each is imported and set up."""
        self.spawn()
        self.wait_ready()

    def spawn(self) -> None:
        """Start the workers, without waiting (they import while the stack comes up; ``wait_ready`` waits)."""
        self._log_dir.mkdir(parents=True, exist_ok=True)
        if self.config.distributed and not self.config.master_port and self.config.master_bind in LOOPBACK:
            # a port known before the master binds: its local workers start beside it (harness/load/master.py)
            self.config = self.config.model_copy(update={"master_port": free_port()})
        for module, log_name in self._workers():
            ready = threading.Event()
            log = (self._log_dir / log_name).open("wb")
            try:
                process = subprocess.Popen(
                    [sys.executable, "-m", module, self.config.model_dump_json(),
                     *([str(self._log_dir)] if module == "harness.load.master" else [])],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, start_new_session=True,
                    env={**os.environ, **self._env},
                    preexec_fn=die_with_parent)
            finally:
                log.close()
            self._processes.append(process)  # first: a failure to record it below still leaves it to stop()
            leftovers.track(process.pid, module, self._log_dir.parent)
            reader = threading.Thread(target=self._read, args=(process, ready), name=f"load-reader-{module}", daemon=True)
            reader.start()
            self._readers.append(reader)
            self._ready.append((module, log_name, process, ready))

    def wait_ready(self) -> None:
        """Wait until every worker is imported and set up (StackError, after stopping them all, if one is not)."""
        # a master is ready once its workers joined: join_timeout more (it says itself when they did not come)
        deadline = time.monotonic() + READY_TIMEOUT + (self.config.join_timeout if self.config.distributed else 0.0)
        for module, log_name, process, ready in self._ready:
            while not ready.wait(0.05):
                if process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    for reader in self._readers:  # its last words (the error line) read
                        reader.join(timeout=2)
                    why = f": {self.error}" if self.error else ""
                    raise StackError(f"the load process {module} did not start{why} (log: {self._log_dir / log_name})")

    def go(self, host: str | None = None, model: str | None = None, gateway: LoadTarget | None = None) -> float:
        """Start the load now, at ``host`` asking for ``model`` when given (else the config's), with what the
        gateway asks of each request (``gateway``: its headers, its served-by header); return the moment (Unix
        time) it started."""
        target: dict[str, Any] = {key: value for key, value in (("host", host), ("model", model)) if value is not None}
        if gateway is not None:
            target.update(headers=gateway.headers, upstream_header=gateway.upstream_header, upstreams=gateway.upstreams)
            target.update({key: path for key, path in (("base_path", gateway.base_path),
                                                       ("anthropic_path", gateway.anthropic_path)) if path is not None})
        line = (json.dumps(target) if target else "go").encode() + b"\n"
        started = time.time()
        for process in self._processes:
            assert process.stdin is not None
            process.stdin.write(line)
            process.stdin.flush()
        return started

    def wait(self, timeout: float) -> bool:
        """Wait for the load to end by itself; False if it had to be stopped."""
        deadline = time.monotonic() + timeout
        finished = True
        try:
            for process in self._processes:
                try:
                    process.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    finished = False
            if not finished:
                self.stop()
        finally:
            for reader in self._readers:
                reader.join(timeout=5)
        return finished

    def stop(self) -> None:
        """End the workers now (SIGTERM, then SIGKILL)."""
        for process in self._processes:
            if process.poll() is None:
                process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            leftovers.release(process.pid)

    def recent_error_rate(self, seconds: float = 5.0) -> float | None:
        """Share of failed requests among those that ended in the last ``seconds``."""
        with self._lock:
            cutoff = time.time() - seconds
            while self._recent and self._recent[0][0] < cutoff:
                self._recent.popleft()
            if not self._recent:
                return None
            return sum(1 for _, failed in self._recent if failed) / len(self._recent)

    def _read(self, process: subprocess.Popen[bytes], ready: threading.Event) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            try:
                message = json.loads(raw)
            except json.JSONDecodeError:
                continue
            event = message.pop("event", None)
            if event == "ready":
                ready.set()
            elif event == "request":
                failed = message.get("error") is not None
                with self._lock:
                    self.requests += 1
                    self.failures += failed
                    self._recent.append((time.time(), failed))
                self.journal.write("request", **message)
            elif event == "listening":  # a Locust master: where workers join
                self.journal.write("load.master", host=message.get("host"), port=message.get("port"))
                self._announce(f"Locust master listening on {message.get('host')}:{message.get('port')} "
                               f"(remote workers join with: chaosgate worker --master HOST:{message.get('port')})")
            elif event == "worker":
                self.journal.write("load.worker", **message)
            elif event == "worker_lost":
                self.journal.write("load.worker_lost", **message)
                with self._lock:
                    self.lost.append(message)
            elif event == "error":
                self.error = str(message.get("message"))
            elif event == "done":
                with self._lock:
                    for key, value in message.items():
                        if isinstance(value, int):
                            self.summary[key] = self.summary.get(key, 0) + value
