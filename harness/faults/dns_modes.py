"""The modes of the ``dns`` fault (harness/faults/dns.py): what the fake DNS server answers for the
target replica's name. The fault maps them onto the fake's own modes (fakes/dns_modes.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.targets import Target

WRONG_ADDRESS = "::1"  # loopback, but nothing of the stack listens there: the project may use only 127.0.0.1 and ::1


class _Mode(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Nxdomain(_Mode):
    """The name does not exist (NXDOMAIN)."""
    mode: Literal["nxdomain"]


class Servfail(_Mode):
    """The DNS server fails (SERVFAIL)."""
    mode: Literal["servfail"]


class NoAnswer(_Mode):
    """Queries for the name get no answer: the gateway's resolver times out."""
    mode: Literal["no_answer"]


class WrongAddress(_Mode):
    """The name answers ::1 (AAAA), where nothing listens on the replica's port."""
    mode: Literal["wrong_address"]


class Flip(_Mode):
    """The name answers ::1, where a second proxy forwards to replica ``to``: the name moved to another replica."""
    mode: Literal["flip"]
    to: Target = Field(description="The replica the name moves to, e.g. 'chat[1]'.")


class Ttl(_Mode):
    """The right address, answered with another TTL (seen when the pool has respect_ttl)."""
    mode: Literal["ttl"]
    ttl: int = Field(ge=0, le=86400, description="TTL of the answers in seconds.")
