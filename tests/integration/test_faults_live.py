"""Every fault kind, injected through the real Toxiproxy in front of a real fake replica,
has the effect on the wire it promises, and clearing it restores normal service."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from harness.faults import FAULTS, ControlFault, Fault
from harness.processes import ProcessGroup, free_port
from harness.runtimes.local import toxiproxy_binary
from harness.toxiproxy import ToxiproxyControl

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 16}


@dataclass
class LiveProxy:
    """One fake replica behind one Toxiproxy proxy; also a FaultContext for faults."""

    toxiproxy: ToxiproxyControl
    api: str
    url: str

    def proxy_name(self, replica: str) -> str:
        return "chat-0"

    def toxics(self) -> list[dict[str, object]]:
        return list(httpx.get(f"{self.api}/proxies/chat-0/toxics", timeout=2).json())


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProxy]:
    processes = ProcessGroup(tmp_path_factory.mktemp("faults") / "logs")
    try:
        api_port, replica_port = free_port(), free_port()
        api = f"http://127.0.0.1:{api_port}"
        toxiproxy = processes.start("toxiproxy", [toxiproxy_binary(), "-host", "127.0.0.1", "-port", str(api_port)])
        replica = processes.start("chat[0]", [sys.executable, "-m", "fakes.llm", "--name", "chat[0]",
                                              "--port", str(replica_port), "--seed", "1"])
        processes.wait_ready(toxiproxy, lambda: _ok(f"{api}/version"), 20)
        processes.wait_ready(replica, lambda: _ok(f"http://127.0.0.1:{replica_port}/health"), 20)
        control = ToxiproxyControl("127.0.0.1", api_port)
        port = control.create_proxy("chat-0", f"127.0.0.1:{replica_port}")
        yield LiveProxy(control, api, f"http://127.0.0.1:{port}")
    finally:
        processes.stop_all()


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def _fault(**fields: object) -> Fault:
    kind = str(fields["kind"])
    return FAULTS[kind].model_validate({"target": "chat[0]", "at": 0, "for": 1, **fields})


def _chat(live: LiveProxy, timeout: float = 5.0) -> tuple[httpx.Response, float]:
    began = time.perf_counter()
    response = httpx.post(f"{live.url}/v1/chat/completions", json=CHAT, timeout=timeout)
    return response, time.perf_counter() - began


@pytest.fixture
def inject(live: LiveProxy) -> Iterator[object]:
    """Inject a fault for one test; clear it afterwards and check service is back."""
    injected: list[Fault] = []

    def _inject(fault: Fault) -> Fault:
        fault.inject(live, "chat[0]")
        injected.append(fault)
        return fault

    yield _inject
    for fault in injected:
        fault.clear(live, "chat[0]")
    assert live.toxics() == []
    response, _ = _chat(live)
    assert response.status_code == 200 and response.headers["x-chaosgate-replica"] == "chat[0]"


def test_every_fault_kind_has_a_live_test() -> None:
    tested = {name.removeprefix("test_").removesuffix("_fault") for name in globals()
              if name.startswith("test_") and name.endswith("_fault")}
    # Faults of the fakes' control APIs are tested live in test_fakes_through_gateway.py, cert in test_cert_fault_live.py,
    # faults that need a runtime capability (process control, memory limits) in test_process_faults.py.
    elsewhere = {"cert"} | {kind for kind, fault in FAULTS.items() if fault.needs}
    assert tested == {kind for kind, fault in FAULTS.items() if not issubclass(fault, ControlFault)} - elsewhere


@pytest.mark.integration
def test_latency_fault(live: LiveProxy, inject) -> None:  # type: ignore[no-untyped-def]
    _, before = _chat(live)
    inject(_fault(kind="latency", latency="400ms"))
    response, after = _chat(live)
    assert response.status_code == 200
    # Without the toxic a reply takes ~0.06s; with it, every reply waits at least the latency.
    assert after >= 0.4 and after >= before


@pytest.mark.integration
def test_bandwidth_fault(live: LiveProxy, inject) -> None:  # type: ignore[no-untyped-def]
    inject(_fault(kind="bandwidth", rate_kbps=1))
    response, elapsed = _chat(live)
    assert response.status_code == 200
    # About 600 bytes of response at 1 KB/s.
    assert elapsed >= len(response.content) / 1024 * 0.8


@pytest.mark.integration
def test_timeout_fault(live: LiveProxy, inject) -> None:  # type: ignore[no-untyped-def]
    inject(_fault(kind="timeout", timeout=0))
    with pytest.raises(httpx.ReadTimeout):
        _chat(live, timeout=1.0)


@pytest.mark.integration
def test_reset_peer_fault(live: LiveProxy, inject) -> None:  # type: ignore[no-untyped-def]
    inject(_fault(kind="reset_peer"))
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        _chat(live)


@pytest.mark.integration
def test_slow_close_fault(live: LiveProxy, inject) -> None:  # type: ignore[no-untyped-def]
    inject(_fault(kind="slow_close", delay="300ms", direction="both"))
    assert sorted((t["type"], t["stream"], t["attributes"]["delay"]) for t in live.toxics()) == [
        ("slow_close", "downstream", 300), ("slow_close", "upstream", 300)]
    response, _ = _chat(live)
    assert response.status_code == 200  # data is intact; only the close is late


@pytest.mark.integration
def test_slicer_fault(live: LiveProxy, inject) -> None:  # type: ignore[no-untyped-def]
    inject(_fault(kind="slicer", average_size=8, size_variation=4, delay="2ms"))
    response, elapsed = _chat(live)
    # The body arrives whole, in ~8-byte pieces 2ms apart.
    assert response.status_code == 200 and response.json()["object"] == "chat.completion"
    assert elapsed >= len(response.content) / 12 * 0.002


@pytest.mark.integration
def test_limit_data_fault(live: LiveProxy, inject) -> None:  # type: ignore[no-untyped-def]
    inject(_fault(kind="limit_data", bytes=150))
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        _chat(live)


@pytest.mark.integration
def test_down_fault(live: LiveProxy, inject) -> None:  # type: ignore[no-untyped-def]
    inject(_fault(kind="down"))
    with pytest.raises(httpx.ConnectError):
        _chat(live)
