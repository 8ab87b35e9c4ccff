"""Certificate faults: the replica's TLS certificate is swapped, while it runs, for a bad one.

``{kind: cert, mode: expired | not_yet_valid | wrong_host | untrusted}`` on replicas of a pool
with ``tls`` set. Inject: ``PUT /tls {"cert": <mode>}`` on the replica's control API (the fake
loads the PEM files harness/certs.py wrote into the run folder and closes its open data
connections, so the gateway has to handshake again and meets the new certificate). Clear:
the same with ``{"cert": "valid"}``, the rotation back.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import httpx
from pydantic import Field

from harness import loopback
from harness.errors import FaultError
from harness.faults.base import CONTROL_TIMEOUT_S, Fault, FaultContext

CertMode = Literal["expired", "not_yet_valid", "wrong_host", "untrusted"]


class Cert(Fault):
    """Serve a bad certificate on the target replicas for ``for``, then a valid one again."""

    kind: Literal["cert"]
    exclusive: ClassVar[bool] = True  # a replica serves one certificate: clearing one would end both
    needs_tls: ClassVar[bool] = True
    fake_only: ClassVar[str | None] = "the fake's control port (it swaps the certificates chaosgate minted)"
    mode: CertMode = Field(description="expired (ended an hour ago), not_yet_valid (starts in a day), wrong_host "
                                       "(names another host) or untrusted (signed by a CA the gateway does not trust).")

    @property
    def label(self) -> str:
        return self.name or f"cert:{self.mode}@{self.target}"

    def inject(self, ctx: FaultContext, replica: str) -> None:
        _swap(ctx, replica, self.mode)

    def clear(self, ctx: FaultContext, replica: str) -> None:
        _swap(ctx, replica, "valid")


def _swap(ctx: FaultContext, replica: str, cert: str) -> None:
    url = f"{ctx.control_url(replica)}/tls"
    try:
        response = loopback.client().put(url, json={"cert": cert}, timeout=CONTROL_TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise FaultError(f"{replica}: control API PUT {url} failed: {str(exc) or type(exc).__name__}") from exc
    if response.status_code != 200:
        raise FaultError(f"{replica}: control API PUT {url} answered {response.status_code}: {response.text}")
