"""The fake DNS server (fakes/dns.py) as a real process: dnspython queries over UDP and TCP, and its
control API switching one name at a time."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import httpx
import pytest

from harness.processes import free_port

START_TIMEOUT_S = 20.0
QUERY_TIMEOUT_S = 2.0
CHAT0, CHAT1, DUAL = "chat-0.chaosgate.test", "chat-1.chaosgate.test", "dual.chaosgate.test"


@dataclass
class DnsFake:
    port: int
    control: str

    def query(self, name: str, rdtype: str = "A", tcp: bool = False) -> tuple[str, list[str], list[int]]:
        """(rcode, addresses, TTLs) of one query."""
        message = dns.message.make_query(name, rdtype)
        send = dns.query.tcp if tcp else dns.query.udp
        answer = send(message, "127.0.0.1", port=self.port, timeout=QUERY_TIMEOUT_S)
        return (dns.rcode.to_text(answer.rcode()), [r.to_text() for rrset in answer.answer for r in rrset],
                [rrset.ttl for rrset in answer.answer])

    def put(self, body: dict[str, object]) -> httpx.Response:
        return httpx.put(f"{self.control}/fault", json=body, timeout=5)


@pytest.fixture
def fake() -> Iterator[DnsFake]:
    port, control_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "fakes.dns", "--port", str(port), "--control-port", str(control_port), "--ttl", "7",
         "--record", f"{CHAT0}=127.0.0.1", "--record", f"{CHAT1}=127.0.0.1@30", "--record", f"{DUAL}=127.0.0.1,::1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    control = f"http://127.0.0.1:{control_port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            if httpx.get(f"{control}/stats", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, "fakes.dns did not start"
        time.sleep(0.05)
    yield DnsFake(port, control)
    process.terminate()
    assert process.wait(timeout=10) is not None


def test_answers_records_over_udp_and_tcp_with_their_ttl(fake: DnsFake) -> None:
    assert fake.query(CHAT0) == ("NOERROR", ["127.0.0.1"], [7])
    assert fake.query(CHAT0, tcp=True) == ("NOERROR", ["127.0.0.1"], [7])
    assert fake.query(CHAT1) == ("NOERROR", ["127.0.0.1"], [30])  # its own TTL (@30)
    assert fake.query(DUAL, "AAAA") == ("NOERROR", ["::1"], [7])
    assert fake.query(CHAT0, "AAAA") == ("NOERROR", [], [])  # the name exists, no IPv6 address: NODATA
    assert fake.query("Chat-0.ChaosGate.Test.") == ("NOERROR", ["127.0.0.1"], [7])  # names are case-blind
    assert fake.query("nope.chaosgate.test")[0] == "NXDOMAIN"


def test_each_mode_changes_only_its_name_and_clearing_restores_the_record(fake: DnsFake) -> None:
    assert fake.put({"name": CHAT0, "mode": "nxdomain"}).json() == {"mode": "nxdomain"}
    assert fake.query(CHAT0)[0] == "NXDOMAIN" and fake.query(CHAT0, "AAAA")[0] == "NXDOMAIN"
    assert fake.query(CHAT1) == ("NOERROR", ["127.0.0.1"], [30])

    fake.put({"name": CHAT0, "mode": "servfail"})
    assert fake.query(CHAT0)[0] == "SERVFAIL"

    fake.put({"name": CHAT0, "mode": "address", "addresses": ["::1"]})
    assert fake.query(CHAT0) == ("NOERROR", [], [])
    assert fake.query(CHAT0, "AAAA") == ("NOERROR", ["::1"], [7])

    fake.put({"name": CHAT0, "mode": "ttl", "ttl": 600})
    assert fake.query(CHAT0) == ("NOERROR", ["127.0.0.1"], [600])

    fake.put({"name": CHAT0, "mode": "no_answer"})
    with pytest.raises(dns.exception.Timeout):
        fake.query(CHAT0)
    with pytest.raises(EOFError):  # over TCP the connection is closed without an answer
        fake.query(CHAT0, tcp=True)

    assert httpx.delete(f"{fake.control}/fault", params={"name": CHAT0}, timeout=5).json() == {"mode": "none"}
    assert fake.query(CHAT0) == ("NOERROR", ["127.0.0.1"], [7])


def test_control_api_lists_modes_counts_queries_and_clears_everything(fake: DnsFake) -> None:
    fake.put({"name": CHAT1, "mode": "servfail"})
    listing = httpx.get(f"{fake.control}/fault", timeout=5).json()["names"]
    assert listing[CHAT1] == {"mode": "servfail", "addresses": ["127.0.0.1"], "ttl": 30}
    assert listing[CHAT0] == {"mode": "none", "addresses": ["127.0.0.1"], "ttl": 7}
    assert httpx.get(f"{fake.control}/fault", params={"name": CHAT1}, timeout=5).json() == {"mode": "servfail"}
    fake.query(CHAT0)
    fake.query(CHAT0, "AAAA")
    fake.query(CHAT1)
    stats = httpx.get(f"{fake.control}/stats", timeout=5).json()
    assert stats["queries"][CHAT0] == {"A": 1, "AAAA": 1} and stats["queries"][CHAT1] == {"A": 1}
    assert stats["answers"][CHAT1] == {"SERVFAIL": 1} and stats["faults"] == {CHAT1: {"mode": "servfail"}}
    assert stats["total"] == 3
    assert httpx.delete(f"{fake.control}/fault", timeout=5).json() == {"mode": "none"}
    assert fake.query(CHAT1)[0] == "NOERROR"
    schema = httpx.get(f"{fake.control}/modes", timeout=5).json()
    assert set(schema["discriminator"]["mapping"]) == {"nxdomain", "servfail", "no_answer", "address", "ttl"}


def test_control_api_refuses_bad_requests_plainly(fake: DnsFake) -> None:
    unknown = fake.put({"name": "other.test", "mode": "nxdomain"})
    assert unknown.status_code == 404 and "no record for 'other.test'" in unknown.json()["error"]
    bad_mode = fake.put({"name": CHAT0, "mode": "explode"})
    assert bad_mode.status_code == 422
    outside = fake.put({"name": CHAT0, "mode": "address", "addresses": ["10.0.0.1"]})
    assert outside.status_code == 422 and "only 127.0.0.1 and ::1 may be answered" in outside.json()["error"]
    no_name = httpx.put(f"{fake.control}/fault", content=b'{"mode": "nxdomain"}', timeout=5)
    assert no_name.status_code == 400
    assert fake.query(CHAT0) == ("NOERROR", ["127.0.0.1"], [7])  # nothing changed


@pytest.mark.parametrize("record, message", [
    ("chat.test", "expected NAME=ADDRESS[,ADDRESS][@TTL]"),
    ("chat.test=10.1.2.3", "only 127.0.0.1 and ::1 may be answered"),
    ("chat.test=127.0.0.1@soon", "expected NAME=ADDRESS[,ADDRESS][@TTL]"),
])
def test_bad_records_on_the_command_line_exit_2_with_the_reason(record: str, message: str) -> None:
    result = subprocess.run([sys.executable, "-m", "fakes.dns", "--port", str(free_port()), "--record", record],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and message in result.stderr
