"""A thin wrapper over toxiproxy-python: the only place that talks to the Toxiproxy API.

toxiproxy-python keeps its host and port as class-level state and raises its own exception
types; this wrapper points it at our server, maps every failure to FaultError/StackError,
and adds what the library lacks (the listen port of a new proxy as an int).
"""

from __future__ import annotations

from typing import Any

import requests
from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists
from toxiproxy.proxy import Proxy

from harness.errors import FaultError, StackError

_LIBRARY_ERRORS = (InvalidToxic, NotFound, ProxyExists, requests.RequestException, ValueError)


class ToxiproxyControl:
    """Proxies and toxics on one Toxiproxy server at ``host:port``."""

    def __init__(self, host: str, port: int) -> None:
        # toxiproxy-python addresses one server per process, through class attributes.
        APIConsumer.host = host
        APIConsumer.port = port
        self._server = Toxiproxy()
        self._proxies: dict[str, Proxy] = {}

    def create_proxy(self, name: str, upstream: str, listen: str = "127.0.0.1:0") -> int:
        """Create a proxy listening on ``listen`` (default: an ephemeral loopback port); return its port."""
        try:
            proxy = self._server.create(upstream=upstream, name=name, listen=listen)
        except _LIBRARY_ERRORS as exc:
            raise StackError(f"toxiproxy: cannot create proxy {name!r} to {upstream}: {exc}") from exc
        self._proxies[name] = proxy
        return int(str(proxy.listen).rsplit(":", 1)[1])

    def add_toxic(self, proxy: str, name: str, toxic_type: str, stream: str,
                  toxicity: float, attributes: dict[str, Any]) -> None:
        """Add one toxic to ``proxy``; ``stream`` is ``upstream`` or ``downstream``."""
        try:
            self._proxy(proxy).add_toxic(name=name, type=toxic_type, stream=stream,
                                         toxicity=toxicity, attributes=attributes)
        except _LIBRARY_ERRORS as exc:
            raise FaultError(f"toxiproxy: cannot add {toxic_type} toxic to {proxy}: {exc}") from exc

    def remove_toxic(self, proxy: str, name: str) -> None:
        """Remove a toxic; removing one that is already gone is not an error."""
        try:
            self._proxy(proxy).destroy_toxic(name)
        except NotFound:
            return
        except _LIBRARY_ERRORS as exc:
            raise FaultError(f"toxiproxy: cannot remove toxic {name} from {proxy}: {exc}") from exc

    def set_enabled(self, proxy: str, enabled: bool) -> None:
        """Enable or disable a proxy; a disabled proxy refuses and drops all connections."""
        try:
            if enabled:
                self._proxy(proxy).enable()
            else:
                self._proxy(proxy).disable()
        except _LIBRARY_ERRORS as exc:
            raise FaultError(f"toxiproxy: cannot {'enable' if enabled else 'disable'} {proxy}: {exc}") from exc

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        try:
            self._server.reset()
        except _LIBRARY_ERRORS as exc:
            raise FaultError(f"toxiproxy: reset failed: {exc}") from exc

    def _proxy(self, name: str) -> Proxy:
        if name not in self._proxies:
            raise FaultError(f"toxiproxy: no proxy named {name!r}")
        return self._proxies[name]
