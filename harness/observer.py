"""Samples the gateway's view of every replica and journals each change of health."""

from __future__ import annotations

import threading
import time

from harness.errors import StackError
from harness.journal import JournalWriter
from harness.runtimes import Stack

SAMPLE_INTERVAL = 0.05  # 20 Hz: detection times are known to within 50 ms


class HealthObserver:
    """A background thread polling the gateway's admin API; ``current`` is the last view."""

    def __init__(self, stack: Stack, journal: JournalWriter, interval: float = SAMPLE_INTERVAL) -> None:
        self._stack = stack
        self._journal = journal
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health-observer", daemon=True)
        self.current: dict[str, bool] = {}
        self.hosts: dict[str, str] | None = None  # every address the gateway holds (DNS may add and remove some) -> flags

    def start(self) -> None:
        self._sample()  # the first sample is journalled before anything else happens
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        failing_since: float | None = None
        while not self._stop.wait(self._interval):
            try:
                self._sample()
                failing_since = None
            except StackError as exc:
                if failing_since is None:
                    failing_since = time.time()
                    self._journal.write("warning", message=f"health observer: {exc}")

    def _sample(self) -> None:
        sampled_at = time.time()
        hosts = self._stack.gateway.host_health()
        answered_at = time.time()  # the view is the gateway's at some moment between the two
        view = {address: h.flags or ("healthy" if h.healthy else "unhealthy") for address, h in sorted(hosts.items())}
        if view != self.hosts:  # journalled before the health changes it explains
            before = self.hosts or {}
            self._journal.write("hosts", ts=sampled_at, hosts=view, added=sorted(set(view) - set(before)),
                                removed=sorted(set(before) - set(view)),
                                changed=sorted(a for a in view if a in before and before[a] != view[a]))
            self.hosts = view
        for replica, health in self._stack.replica_health(hosts).items():
            if self.current.get(replica) is not health.healthy:
                self.current[replica] = health.healthy
                self._journal.write("health", ts=sampled_at, replica=replica, healthy=health.healthy,
                                    flags=health.flags, answered=answered_at)
