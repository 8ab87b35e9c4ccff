"""A fake serving TLS on its data port (fakes/tls.py): plain control port, certificate swapped in
place by PUT /tls, open connections closed, bad requests refused, SIGTERM honoured."""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from harness.certs import mint
from harness.processes import free_port

NAME = "chat.upstream.test"


@dataclass(frozen=True)
class TlsFake:
    port: int
    control: str
    ca: Path
    process: subprocess.Popen[bytes]

    def client(self) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.ca))
        context.check_hostname = False  # the URL is 127.0.0.1; names are checked in handshake()
        return httpx.Client(base_url=f"https://127.0.0.1:{self.port}", verify=context, timeout=5)

    def handshake(self) -> str | None:
        """None if a client trusting the CA accepts the replica as NAME, else why not."""
        context = ssl.create_default_context(cafile=str(self.ca))
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as raw, \
                    context.wrap_socket(raw, server_hostname=NAME) as tls:
                assert tls.version() == "TLSv1.3"
                return None
        except ssl.SSLCertVerificationError as exc:
            return str(exc.verify_message)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[TlsFake]:
    ca = mint(tmp_path / "tls", NAME)
    port, control_port = free_port(), free_port()
    process = subprocess.Popen([sys.executable, "-m", "fakes.llm", "--name", "chat[0]", "--port", str(port),
                                "--control-port", str(control_port), "--tls-dir", str(tmp_path / "tls")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    running = TlsFake(port, f"http://127.0.0.1:{control_port}", ca, process)
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"{running.control}/tls", timeout=0.5).status_code == 200 and running.handshake() is None:
                break
        except (httpx.HTTPError, OSError):
            pass
        assert process.poll() is None and time.monotonic() < deadline, "the TLS fake did not start"
        time.sleep(0.05)
    try:
        yield running
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def test_data_port_speaks_tls_and_control_port_plain_http(fake: TlsFake) -> None:
    with fake.client() as client:
        assert client.get("/health").json()["status"] == "ok"
    assert httpx.get(f"{fake.control}/tls", timeout=5).json() == {"cert": "valid", "swaps": 0, "dropped": 0}
    assert httpx.get(f"{fake.control}/fault", timeout=5).json() == {"mode": "none"}, "the fault API is still there"


def test_swap_takes_effect_on_new_handshakes_and_closes_open_connections(fake: TlsFake) -> None:
    with fake.client() as client:
        assert client.get("/health").status_code == 200  # one open keep-alive connection
        answer = httpx.put(f"{fake.control}/tls", json={"cert": "expired"}, timeout=5).json()
        assert answer == {"cert": "expired", "swaps": 1, "dropped": 1}
        assert "certificate has expired" in (fake.handshake() or "")
        with pytest.raises(httpx.ConnectError):  # the old connection is gone; a new one meets the bad cert
            client.get("/health")
    answer = httpx.put(f"{fake.control}/tls", json={"cert": "valid", "drop_connections": False}, timeout=5).json()
    assert answer["cert"] == "valid" and answer["dropped"] == 1, "no more connections closed"
    assert fake.handshake() is None


def test_bad_requests_are_refused_and_change_nothing(fake: TlsFake) -> None:
    missing = httpx.put(f"{fake.control}/tls", json={"cert": "revoked"}, timeout=5)
    assert missing.status_code == 404 and "cannot load certificate 'revoked'" in missing.json()["error"]
    for body in ({"cert": "../valid"}, {"certificate": "valid"}, "not json"):
        response = httpx.put(f"{fake.control}/tls", content=body if isinstance(body, str) else None,
                             json=None if isinstance(body, str) else body, timeout=5)
        assert response.status_code == 422, response.text
    assert httpx.get(f"{fake.control}/tls", timeout=5).json()["cert"] == "valid"
    assert fake.handshake() is None


def test_sigterm_stops_both_servers(fake: TlsFake) -> None:
    fake.process.send_signal(signal.SIGTERM)
    fake.process.wait(timeout=10)
    assert b"Traceback" not in (fake.process.stderr.read() if fake.process.stderr else b"")


def test_unusable_certificate_folder_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "fakes.llm", "--name", "x", "--port", str(free_port()),
                             "--tls-dir", str(tmp_path)], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2 and "cannot load certificate 'valid'" in result.stderr


def test_the_mcp_fake_serves_tls_too(tmp_path: Path) -> None:
    ca = mint(tmp_path / "tls", NAME)
    port, control_port = free_port(), free_port()
    process = subprocess.Popen([sys.executable, "-m", "fakes.mcp", "--name", "tools[0]", "--port", str(port),
                                "--control-port", str(control_port), "--tls-dir", str(tmp_path / "tls"),
                                "--tls-cert", "wrong_host"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    fake = TlsFake(port, f"http://127.0.0.1:{control_port}", ca, process)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{fake.control}/tls", timeout=0.5).json()["cert"] == "wrong_host":
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "the MCP TLS fake did not start"
            time.sleep(0.05)
        assert "Hostname mismatch" in (fake.handshake() or ""), "it started with --tls-cert"
        with fake.client() as client:
            assert client.get("/health").status_code == 200
    finally:
        process.kill()
        process.wait()
