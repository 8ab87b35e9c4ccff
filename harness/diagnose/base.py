"""What every diagnose layer shares: the host being probed, a layer's result, probe limits,
and the classification of socket errors into causes.

Probes only ever touch loopback addresses (127.0.0.0/8, ::1): ``require_loopback`` refuses any
other, so a config naming a remote host is reported, never probed.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from harness.diagnose.model import Cluster, Host


@dataclass(frozen=True)
class ProbeSettings:
    """Limits of every probe: short timeouts and bounded attempts."""

    connect_timeout: float = 1.0     # upper bound (the cluster's connect_timeout if shorter)
    peek_s: float = 0.2              # after connecting, how long to watch for an immediate close/reset
    slow_budget: float = 2.5         # how long to wait for a health answer that missed the check's timeout
    dns_timeout: float = 1.0
    inference_timeout: float = 3.0
    slow_threshold: float = 1.0      # an inference slower than this is reported as slow
    mcp_path: str = "/mcp"
    model: str | None = None         # the model the inference probe asks for (default: the first of /v1/models)


@dataclass
class ProbeTarget:
    """One host under diagnosis; layers record what they learned for the next ones."""

    cluster: Cluster
    host: Host
    address: str                     # the IP the next layers dial (DNS may change it)
    port: int
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def scheme(self) -> str:
        return "https" if self.cluster.tls else "http"

    def url(self, path: str) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{host}:{self.port}{path}"


@dataclass(frozen=True)
class LayerResult:
    """What one layer found: passed, or the cause it names with its evidence."""

    layer: str
    ok: bool
    evidence: str
    cause: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"layer": self.layer, "ok": self.ok, "cause": self.cause, "evidence": self.evidence,
                "details": self.details}


class Layer(Protocol):
    """One step of the walk: DNS, TCP, TLS, the health endpoint, the protocol, MCP, inference."""

    name: str

    def applies(self, target: ProbeTarget) -> bool:
        """Whether this layer has anything to check for ``target``."""

    def probe(self, target: ProbeTarget, settings: ProbeSettings) -> LayerResult:
        """Check ``target`` at this layer (bounded in time, never raises)."""


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def ok(layer: str, evidence: str, **details: Any) -> LayerResult:
    return LayerResult(layer, True, evidence, None, details)


def fail(layer: str, cause: str, evidence: str, **details: Any) -> LayerResult:
    return LayerResult(layer, False, evidence, cause, details)


def transport_failure(exc: BaseException) -> tuple[str, str] | None:
    """A connection-level failure as (cause, words), or None if ``exc`` is not one."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 6:
        chain.append(current)
        current = current.__cause__ or current.__context__
    for item in chain:
        if isinstance(item, ConnectionRefusedError) or getattr(item, "errno", None) == errno.ECONNREFUSED:
            return "connection_refused", "connection refused (RST to the SYN): nothing listens there"
        if isinstance(item, ConnectionResetError) or getattr(item, "errno", None) == errno.ECONNRESET:
            return "connection_reset", "connection reset by peer"
        if isinstance(item, (BrokenPipeError, ssl.SSLEOFError)):
            return "connection_closed", "the peer closed the connection"
        if isinstance(item, httpx.ConnectTimeout):
            return "connection_timeout", "connect timed out (no answer to the SYN)"
        if isinstance(item, httpx.RemoteProtocolError) and "without sending" in str(item).lower():
            return "connection_closed", f"the peer closed the connection: {item}"
        if isinstance(item, httpx.RemoteProtocolError) and "peer closed" in str(item).lower():
            return "connection_closed", f"the peer closed the connection mid-response: {item}"
    return None


def connect(target: ProbeTarget, settings: ProbeSettings) -> socket.socket:
    """A TCP connection to the target (raises OSError / socket.timeout)."""
    timeout = min(settings.connect_timeout, target.cluster.connect_timeout)
    return socket.create_connection((target.address, target.port), timeout=timeout)


def client_context(target: ProbeTarget) -> ssl.SSLContext:
    """A TLS client context that does not verify (the TLS layer judges the certificate itself)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    tls = target.cluster.tls
    if tls is not None and tls.alpn:
        context.set_alpn_protocols(list(tls.alpn))
    return context


def http_client(target: ProbeTarget, timeout: float) -> httpx.Client:
    """An HTTP/1.1 client for the target: TLS without verification (the TLS layer did that), SNI as
    the gateway sends it, no proxies from the environment, no redirects."""
    verify: ssl.SSLContext | bool = client_context(target) if target.cluster.tls else False
    return httpx.Client(timeout=httpx.Timeout(timeout, connect=min(1.0, target.cluster.connect_timeout)),
                        verify=verify, trust_env=False, follow_redirects=False)


def request_extensions(target: ProbeTarget) -> dict[str, Any]:
    """httpx extensions that make the TLS SNI what the gateway sends."""
    tls = target.cluster.tls
    return {"sni_hostname": tls.sni} if tls is not None and tls.sni else {}


def short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
