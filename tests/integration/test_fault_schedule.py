"""Faults due at the same moment are injected together: on a real Toxiproxy whose API answers slowly
(each call 150 ms, as a busy control plane would), two faults with the same ``at`` are journalled as
starting within a few tens of ms of each other, where one after the other they start 150 ms apart."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from harness.faults import FAULTS, Fault
from harness.journal import JournalWriter
from harness.plan import FaultAction, together
from harness.processes import ProcessGroup, free_port
from harness.run import _apply, _apply_together
from harness.runtimes.local import toxiproxy_binary
from harness.toxiproxy import ToxiproxyControl

from .conftest import require_components

API_LATENCY_MS = 150
TOGETHER = 0.03   # journalled starts of faults injected together: within 30 ms


@dataclass
class SlowToxiproxy:
    """Two replicas' proxies on a real Toxiproxy reached through a proxy of its own with 150 ms of
    latency on every API answer; a FaultContext for the faults."""

    toxiproxy: ToxiproxyControl
    api: str                      # the server's own, fast, API address
    api_proxy: ToxiproxyControl   # knows the "api" proxy (toxiproxy-python talks to one server per process)

    def slow_down(self) -> None:
        """Every answer of the API through ``toxiproxy`` comes 150 ms late (again, after a reset)."""
        self.api_proxy.add_toxic("api", "slow-api", "latency", "downstream", 1.0, {"latency": API_LATENCY_MS})

    def proxy_name(self, replica: str) -> str:
        return replica.replace("[", "-").rstrip("]")


@pytest.fixture
def slow(tmp_path: Path) -> Iterator[SlowToxiproxy]:
    require_components()
    processes = ProcessGroup(tmp_path / "logs")
    try:
        api_port = free_port()
        server = processes.start("toxiproxy", [toxiproxy_binary(), "-host", "127.0.0.1", "-port", str(api_port)])
        processes.wait_ready(server, lambda: _ok(f"http://127.0.0.1:{api_port}/version"), 20)
        direct = ToxiproxyControl("127.0.0.1", api_port)
        slow_port = direct.create_proxy("api", f"127.0.0.1:{api_port}")
        control = ToxiproxyControl("127.0.0.1", slow_port)  # from here on, every API call goes through "api"
        for name in ("chat-0", "chat-1"):
            control.create_proxy(name, f"127.0.0.1:{free_port()}")
        toxiproxy = SlowToxiproxy(control, f"127.0.0.1:{api_port}", direct)
        toxiproxy.slow_down()
        yield toxiproxy
    finally:
        processes.stop_all()


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def _starts(journal: Path) -> dict[str, float]:
    events = [json.loads(line) for line in journal.read_text().splitlines()]
    return {e["fault"]: e["ts"] for e in events if e["type"] == "fault.started"}


def _faults() -> list[FaultAction]:
    def action(fields: dict[str, object], replica: str) -> FaultAction:
        fault: Fault = FAULTS[str(fields["kind"])].model_validate({"target": replica, "at": 2, "for": 1, **fields})
        return FaultAction(2.0, True, fault, (replica,))

    return [action({"kind": "latency", "latency": "100ms"}, "chat[0]"),
            action({"kind": "reset_peer", "timeout": 0}, "chat[1]")]


def test_faults_with_the_same_at_start_together(slow: SlowToxiproxy, tmp_path: Path) -> None:
    batches = together(_faults())
    assert len(batches) == 1 and len(batches[0]) == 2  # one batch: due at the same moment
    journal = JournalWriter(tmp_path / "together.jsonl")
    active: list[FaultAction] = []
    began = time.monotonic()
    _apply_together(batches[0], slow, journal, active)
    took = time.monotonic() - began
    journal.close()
    starts = _starts(journal.path)
    assert set(starts) == {"latency@chat[0]", "reset_peer@chat[1]"} and len(active) == 2
    spread = max(starts.values()) - min(starts.values())
    assert took >= API_LATENCY_MS / 1000, f"the API was not slow ({took:.3f}s): the test would prove nothing"
    assert spread <= TOGETHER, f"faults due together started {spread * 1000:.0f} ms apart"
    toxics = {name: httpx.get(f"http://{slow.api}/proxies/{name}/toxics", timeout=5).json()
              for name in ("chat-0", "chat-1")}
    assert [t["type"] for t in toxics["chat-0"]] == ["latency"] and [t["type"] for t in toxics["chat-1"]] == ["reset_peer"]

    # One after the other (as before), the second starts only when the first's API call answered.
    slow.toxiproxy.reset()  # removes the API's latency too
    slow.slow_down()
    sequential = JournalWriter(tmp_path / "sequential.jsonl")
    for action in _faults():
        _apply(action, slow, sequential)
    sequential.close()
    apart = _starts(sequential.path)
    assert apart["reset_peer@chat[1]"] - apart["latency@chat[0]"] >= API_LATENCY_MS / 1000

