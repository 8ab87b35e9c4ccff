"""Drives the Locust worker process and copies every request it reports into the journal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from harness.errors import StackError
from harness.journal import JournalWriter
from harness.load.config import LoadConfig
from harness.processes import die_with_parent

READY_TIMEOUT = 30.0


class LoadGenerator:
    """One Locust process; ``start`` blocks until it is ready, ``go`` starts the load."""

    def __init__(self, config: LoadConfig, journal: JournalWriter, log_dir: Path,
                 env: dict[str, str] | None = None) -> None:
        self.config = config
        self.journal = journal
        self._log_dir = log_dir
        self._env = env or {}
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self.requests = 0
        self.failures = 0
        self._recent: deque[tuple[float, bool]] = deque()
        self.summary: dict[str, int] = {}

    def start(self) -> None:
        """Start the worker and wait until Locust is imported and set up."""
        self._log_dir.mkdir(parents=True, exist_ok=True)
        log = (self._log_dir / "locust.log").open("wb")
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "harness.load.worker", self.config.model_dump_json()],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, start_new_session=True,
                env={**os.environ, **self._env},
                preexec_fn=die_with_parent)
        finally:
            log.close()
        self._reader = threading.Thread(target=self._read, name="load-reader", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + READY_TIMEOUT
        while not self._ready.wait(0.05):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise StackError(f"the Locust load process did not start (log: {self._log_dir / 'locust.log'})")

    def go(self) -> float:
        """Start the load now; return the moment (Unix time) it started."""
        assert self._process is not None and self._process.stdin is not None
        started = time.time()
        self._process.stdin.write(b"go\n")
        self._process.stdin.flush()
        return started

    def wait(self, timeout: float) -> bool:
        """Wait for the load to end by itself; False if it had to be stopped."""
        assert self._process is not None
        try:
            self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            return False
        finally:
            if self._reader is not None:
                self._reader.join(timeout=5)
        return True

    def stop(self) -> None:
        """End the worker now (SIGTERM, then SIGKILL)."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def recent_error_rate(self, seconds: float = 5.0) -> float | None:
        """Share of failed requests among those that ended in the last ``seconds``."""
        with self._lock:
            cutoff = time.time() - seconds
            while self._recent and self._recent[0][0] < cutoff:
                self._recent.popleft()
            if not self._recent:
                return None
            return sum(1 for _, failed in self._recent if failed) / len(self._recent)

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for raw in self._process.stdout:
            try:
                message = json.loads(raw)
            except json.JSONDecodeError:
                continue
            event = message.pop("event", None)
            if event == "ready":
                self._ready.set()
            elif event == "request":
                failed = message.get("error") is not None
                with self._lock:
                    self.requests += 1
                    self.failures += failed
                    self._recent.append((time.time(), failed))
                self.journal.write("request", **message)
            elif event == "done":
                self.summary = message
