"""TLS on a fake's data port, with a certificate the harness can swap while the fake runs.

``--tls-dir DIR`` makes the data port serve TLS with ``DIR/<cert>.crt`` and ``DIR/<cert>.key``
(written by harness/certs.py; ``--tls-cert`` picks the first one, default ``valid``). The
control port stays plain HTTP and gains::

    GET /tls    {"cert": "<name>", "swaps": n, "dropped": n}
    PUT /tls    {"cert": "expired", "drop_connections": true}: load DIR/expired.crt into the
                server's SSLContext; new handshakes get it at once. With drop_connections
                (the default) every open data connection is closed too, since a gateway
                keeps its connections (and its health-check connection) open and would
                otherwise never see the new certificate.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

log = logging.getLogger(__name__)
CERT_NAME = r"^[a-z][a-z0-9_]*$"  # a file stem in the certificate folder, never a path


class TlsSwap(BaseModel):
    """The body of ``PUT /tls``."""

    model_config = ConfigDict(extra="forbid")

    cert: str = Field(pattern=CERT_NAME, description="Which certificate of the folder to serve from now on.")
    drop_connections: bool = Field(default=True, description="Close every open data connection as well.")


class TlsServing:
    """The data port's SSLContext and the certificate it serves."""

    def __init__(self, directory: Path, cert: str) -> None:
        self.directory = directory
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.set_alpn_protocols(["http/1.1"])
        # TLS 1.3 and no session tickets: TLS 1.3 resumes sessions only with tickets, so every new
        # connection is a full handshake that meets the current certificate, as after a real server
        # restarts with a new one. (With TLS 1.2 Envoy resumed sessions through the server's session
        # cache, and a swapped certificate went unseen.)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_3
        self.context.num_tickets = 0
        self.cert = ""
        self.swaps = self.dropped = 0
        self.drop_all: Callable[[], int] = lambda: 0  # set by fakes.serving once the server runs
        self.load(cert)

    def load(self, cert: str) -> None:
        """Serve ``cert`` on new handshakes; ValueError if its files are missing or unusable."""
        chain, key = self.directory / f"{cert}.crt", self.directory / f"{cert}.key"
        try:
            self.context.load_cert_chain(chain, key)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot load certificate {cert!r} from {self.directory}: {exc}") from exc
        self.cert = cert

    def describe(self) -> dict[str, object]:
        return {"cert": self.cert, "swaps": self.swaps, "dropped": self.dropped}

    def routes(self) -> list[Route]:
        """``GET /tls`` and ``PUT /tls`` for the control app."""

        async def get_tls(request: Request) -> Response:
            return JSONResponse(self.describe())

        async def put_tls(request: Request) -> Response:
            try:
                swap = TlsSwap.model_validate(json.loads(await request.body()))
            except ValueError as exc:
                detail = "; ".join(str(e["msg"]) for e in exc.errors()) if isinstance(exc, ValidationError) else str(exc)
                return JSONResponse({"error": f'expected {{"cert": "<name>"}}: {detail}'}, 422)
            try:
                self.load(swap.cert)
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, 404)
            self.swaps += 1
            if swap.drop_connections:
                self.dropped += self.drop_all()
            log.warning("tls: serving %s", json.dumps(self.describe()))
            return JSONResponse(self.describe())

        return [Route("/tls", get_tls, methods=["GET"]), Route("/tls", put_tls, methods=["PUT"])]
