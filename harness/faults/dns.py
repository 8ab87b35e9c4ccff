"""DNS faults: the fake DNS server (fakes/dns.py) answers a replica's name wrongly.

Pools with ``dns:`` are resolved by name (``chat-0.chaosgate.test`` for ``chat[0]``) through the
fake DNS server, which normally answers 127.0.0.1, where the replica's Toxiproxy proxy listens on
the port the gateway's endpoint names. The seed's "DNS resolution failure" row, in six modes:
``nxdomain``, ``servfail``, ``no_answer`` (the query is dropped: the resolver times out),
``wrong_address`` (the name answers ::1, where nothing listens on that port), ``flip`` (the name
answers ::1, where a second Toxiproxy proxy forwards to the replica ``to``: the name moved to
another replica) and ``ttl`` (the right address with another TTL). Clearing restores the record;
a flip's proxy is disabled too (::1 is unserved again, so connections Envoy still makes there
until its next refresh are refused).
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import httpx

from harness.errors import FaultError, StackError
from harness.faults.base import CONTROL_TIMEOUT_S, ControlFault, FaultContext, with_modes
from harness.faults.dns_modes import WRONG_ADDRESS, Flip, NoAnswer, Nxdomain, Servfail, Ttl, WrongAddress
from harness.targets import resolve

if TYPE_CHECKING:
    from harness.runtimes.base import DnsServer


@runtime_checkable
class DnsContext(Protocol):
    def dns_server(self) -> DnsServer:
        """The stack's fake DNS server; FaultError when it has none."""


class Dns(ControlFault):
    """``{kind: dns, mode: <mode>, ...}`` on replicas of a pool with ``dns:``."""

    kind: Literal["dns"]

    def pool_problems(self, pool: Any, scenario: Any) -> list[str]:
        """Why this fault cannot act on ``pool`` (called by the scenario's cross-checks)."""
        if pool.dns is None:
            return [f"dns faults act on pools resolved by name; set dns: true on upstream {pool.name!r}"]
        mode = getattr(self, "mode", "")
        if mode in ("wrong_address", "flip") and pool.dns.lookup_family == "v4_only":
            return [f"a {mode} fault answers {WRONG_ADDRESS} (AAAA), which lookup_family v4_only never asks for; "
                    f"set dns.lookup_family on upstream {pool.name!r} to v4_preferred, auto or all"]
        if mode == "flip":
            try:
                to = resolve(getattr(self, "to"), scenario.pools)
            except ValueError as exc:
                return [f"to: {exc}"]
            if len(to) != 1 or to[0] in resolve(self.target, scenario.pools):
                return [f"to: expected one replica other than the target, got {getattr(self, 'to')!r}"]
        return []

    def inject(self, ctx: FaultContext, replica: str) -> None:
        server = _server(ctx)
        body: dict[str, Any] = {"mode": self.mode_body()["mode"]}
        if isinstance(self, WrongAddress):
            body = {"mode": "address", "addresses": [WRONG_ADDRESS]}
        elif isinstance(self, Flip):
            _flip_proxy(ctx, server, replica, self.to)
            body = {"mode": "address", "addresses": [WRONG_ADDRESS]}
        elif isinstance(self, Ttl):
            body["ttl"] = self.ttl
        _control(server, "PUT", {"name": _name(server, replica), **body})

    def clear(self, ctx: FaultContext, replica: str) -> None:
        server = _server(ctx)
        _control(server, "DELETE", None, {"name": _name(server, replica)})
        if isinstance(self, Flip):
            ctx.toxiproxy.set_enabled(_flip_proxy_name(replica, self.to), False)


with_modes(Dns, (Nxdomain, Servfail, NoAnswer, WrongAddress, Flip, Ttl))


def _server(ctx: FaultContext) -> DnsServer:
    if not isinstance(ctx, DnsContext):
        raise FaultError("this runtime has no fake DNS server")
    return ctx.dns_server()


def _name(server: DnsServer, replica: str) -> str:
    if replica not in server.names:
        raise FaultError(f"{replica} is not resolved by name (its pool has no dns: block)")
    return server.names[replica]


def _flip_proxy_name(replica: str, to: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"dns-flip-{replica}-to-{to}")


def _flip_proxy(ctx: FaultContext, server: DnsServer, replica: str, to: str) -> None:
    """A proxy on [::1]:<replica's port> to replica ``to``: where the flipped name now leads."""
    name, listen = _flip_proxy_name(replica, to), f"[{WRONG_ADDRESS}]:{server.ports[replica]}"
    try:
        ctx.toxiproxy.create_proxy(name, server.backends[to], listen=listen)
    except StackError as exc:  # an earlier flip of this name to the same replica made it: enable it again
        try:
            ctx.toxiproxy.set_enabled(name, True)
        except FaultError:
            raise FaultError(f"{replica}: cannot listen on {listen} for the flip to {to}: {exc}") from exc


@functools.cache
def _http() -> httpx.Client:
    """One client for every call: a new one costs 0.1-0.3s (its TLS context) on a loaded machine,
    which would delay each fault's start and end by as much."""
    return httpx.Client(timeout=CONTROL_TIMEOUT_S)


def _control(server: DnsServer, method: str, body: dict[str, Any] | None, params: dict[str, str] | None = None) -> None:
    url = f"{server.control_url}/fault"
    try:
        response = _http().request(method, url, json=body, params=params)
    except httpx.HTTPError as exc:
        raise FaultError(f"fake DNS control API {method} {url} failed: {str(exc) or type(exc).__name__}") from exc
    if response.status_code != 200:
        raise FaultError(f"fake DNS control API {method} {url} answered {response.status_code}: {response.text}")
