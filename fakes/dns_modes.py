"""The fault modes of the fake DNS server (fakes/dns.py): what each one answers, per name.

Every name has its own mode (``PUT /fault {"name": ..., "mode": ...}`` on the control port);
a name without one answers its configured records. The harness's ``dns`` fault kind
(harness/faults/dns.py) switches these same models.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

LOOPBACK_ONLY = ("127.0.0.1", "::1")  # the only addresses the project may send traffic to


class _Mode(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Nxdomain(_Mode):
    """The name does not exist: rcode NXDOMAIN for every query type."""

    mode: Literal["nxdomain"]


class Servfail(_Mode):
    """The server fails: rcode SERVFAIL for every query type."""

    mode: Literal["servfail"]


class NoAnswer(_Mode):
    """The query is dropped (no UDP answer; TCP closed): the resolver's own timeout decides."""

    mode: Literal["no_answer"]


class Address(_Mode):
    """Answer ``addresses`` instead of the configured ones (A for IPv4, AAAA for IPv6)."""

    mode: Literal["address"]
    addresses: list[str] = Field(min_length=1, description="Addresses to answer: 127.0.0.1 and/or ::1.")
    ttl: int | None = Field(default=None, ge=0, le=86400, description="TTL of the answer (default: the name's own).")

    @field_validator("addresses")
    @classmethod
    def _loopback(cls, addresses: list[str]) -> list[str]:
        for address in addresses:
            if str(ipaddress.ip_address(address)) not in LOOPBACK_ONLY:
                raise ValueError(f"{address!r}: only {' and '.join(LOOPBACK_ONLY)} may be answered")
        return [str(ipaddress.ip_address(a)) for a in addresses]


class Ttl(_Mode):
    """Answer the configured addresses with another TTL (short or long)."""

    mode: Literal["ttl"]
    ttl: int = Field(ge=0, le=86400, description="TTL of the answer in seconds.")


DNS_MODE_MODELS: tuple[type[_Mode], ...] = (Nxdomain, Servfail, NoAnswer, Address, Ttl)
DnsMode = Annotated[Union[Nxdomain, Servfail, NoAnswer, Address, Ttl], Field(discriminator="mode")]  # noqa: UP007
DNS_MODES: TypeAdapter[DnsMode] = TypeAdapter(DnsMode)
