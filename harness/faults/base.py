"""The fault seam: every fault kind is a pydantic model that can inject and clear itself.

A fault in a scenario names a ``target`` (``chat[0]``, ``chat[*]`` or ``chat``), a start
``at`` and a duration ``for``. The harness resolves the target to replicas and calls
``inject`` once per replica when the fault starts and ``clear`` when it ends (and at
teardown, whatever happened).

Two families share the mechanics here: ``ToxicFault`` (a Toxiproxy toxic on the proxy in
front of the replica: bytes on the wire) and ``ControlFault`` (a fault mode of the fake
server itself, switched through its control API: the protocol and the application).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Protocol, TypeVar, Union, cast

import httpx
from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler
from pydantic_core import CoreSchema

from harness import loopback
from harness.durations import Duration
from harness.errors import FaultError
from harness.targets import Target
from harness.toxiproxy import ToxiproxyControl

if TYPE_CHECKING:
    from harness.runtimes.base import ProcessControl

CONTROL_TIMEOUT_S = 5.0  # the control API answers at once; a fake that does not is broken


class FaultContext(Protocol):
    """What a fault may touch in a running stack."""

    @property
    def toxiproxy(self) -> ToxiproxyControl:
        """The Toxiproxy server that sits between the gateway and every replica."""

    def proxy_name(self, replica: str) -> str:
        """The Toxiproxy proxy in front of ``replica`` (e.g. ``chat[0]``)."""

    def control_url(self, replica: str) -> str:
        """Base URL of ``replica``'s control API (its fault modes), reachable by the harness only."""

    def processes(self) -> ProcessControl:
        """Signals and restarts of replica processes; FaultError on a runtime without them."""


class Fault(BaseModel):
    """Fields every fault has; subclasses add ``kind`` and their own parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    exclusive: ClassVar[bool] = False  # True: two faults of this kind cannot overlap on one replica
    pool_kinds: ClassVar[frozenset[str] | None] = None  # the upstream kinds it can target; None: any
    needs: ClassVar[frozenset[str]] = frozenset()  # runtime capabilities it needs (harness.runtimes.base)
    needs_memory_limit: ClassVar[bool] = False  # True: its target pool must set memory_limit
    needs_tls: ClassVar[bool] = False  # True: its target pool must set tls
    # What it needs of chaosgate's own fake replica ("the fake's control port", "a process chaosgate owns"):
    # refused on a pool of the user's own servers (upstreams[].address); None: it acts on the wire only
    fake_only: ClassVar[str | None] = None

    kind: str
    name: str | None = Field(default=None, description="Names the fault in reports; default '<kind>@<target>'.")
    target: Target = Field(description="'pool[i]' for one replica, 'pool[*]' or 'pool' for all of them.")
    at: Duration = Field(description="When the fault starts, from the start of the load.")
    duration: Duration = Field(alias="for", gt=0, description="How long the fault lasts.")

    @property
    def label(self) -> str:
        """The name reports use for this fault."""
        return self.name or f"{self.kind}@{self.target}"

    def inject(self, ctx: FaultContext, replica: str) -> None:
        """Start the fault on one replica."""
        raise NotImplementedError

    def clear(self, ctx: FaultContext, replica: str) -> None:
        """End the fault on one replica; must succeed when the fault is not active."""
        raise NotImplementedError


Direction = Literal["downstream", "upstream", "both"]


class ToxicFault(Fault):
    """A fault made by one Toxiproxy toxic on the proxy in front of a replica."""

    toxic_type: ClassVar[str]
    direction: Direction = Field(
        default="downstream",
        description="Which bytes the toxic acts on: 'downstream' (replica to gateway), 'upstream' (gateway to replica) or 'both'.",
    )
    toxicity: float = Field(default=1.0, ge=0.0, le=1.0,
                            description="Share of connections affected (Toxiproxy draws once per connection).")

    def attributes(self) -> dict[str, Any]:
        """The toxic's attributes in Toxiproxy's units."""
        raise NotImplementedError

    def _streams(self) -> list[str]:
        return ["downstream", "upstream"] if self.direction == "both" else [self.direction]

    def toxic_name(self, stream: str) -> str:
        """Unique per fault (labels are unique), so overlapping faults never share a toxic."""
        return re.sub(r"[^A-Za-z0-9_.-]", "_", f"chaosgate_{self.label}_{stream}")

    def inject(self, ctx: FaultContext, replica: str) -> None:
        for stream in self._streams():
            ctx.toxiproxy.add_toxic(ctx.proxy_name(replica), self.toxic_name(stream),
                                    self.toxic_type, stream, self.toxicity, self.attributes())

    def clear(self, ctx: FaultContext, replica: str) -> None:
        for stream in self._streams():
            ctx.toxiproxy.remove_toxic(ctx.proxy_name(replica), self.toxic_name(stream))


C = TypeVar("C", bound="ControlFault")


class ControlFault(Fault):
    """A fault mode of the fake server itself, set through the replica's control API.

    A kind of this family validates as the union of one subclass per mode of its fake (see
    ``with_modes``), told apart by ``mode``; each subclass has the mode's own parameters, so a
    scenario writes them flat: ``{kind: llm_fault, mode: error_status, status: 503, ...}``.
    """

    exclusive: ClassVar[bool] = True  # a fake has one mode at a time: clearing one would end both
    mode_model: ClassVar[type[BaseModel]]  # on each mode's subclass: the fake's own model of the mode
    variants: ClassVar[tuple[type[ControlFault], ...]] = ()

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        if source is cls and cls.__dict__.get("variants"):
            schema = handler(Annotated[Union[cls.variants], Field(discriminator="mode")])  # noqa: UP007
            # A named definition, so JSON Schema refers to '#/$defs/<Kind>' like every other kind.
            return cast(CoreSchema, {**schema, "ref": f"{cls.__module__}.{cls.__qualname__}:modes"})
        return handler(source)

    @property
    def label(self) -> str:
        """``<kind>:<mode>@<target>`` unless named, so faults of one kind in different modes differ."""
        return self.name or f"{self.kind}:{getattr(self, 'mode', '?')}@{self.target}"

    def mode_body(self) -> dict[str, Any]:
        """What ``PUT /fault`` gets: the mode and its parameters, in the fake's own shape."""
        return self.model_dump(mode="json", include=set(self.mode_model.model_fields))

    def inject(self, ctx: FaultContext, replica: str) -> None:
        _control(ctx, replica, "PUT", self.mode_body())

    def clear(self, ctx: FaultContext, replica: str) -> None:
        _control(ctx, replica, "DELETE", None)


def with_modes(kind: type[C], modes: tuple[type[BaseModel], ...]) -> type[C]:
    """Make ``kind`` validate as one of its modes: a subclass of it and of each mode's model."""
    kind.variants = tuple(
        type(f"{kind.__name__}{mode.__name__}", (kind, mode), {"__module__": kind.__module__, "mode_model": mode,
                                                               "__doc__": mode.__doc__})
        for mode in modes)
    kind.model_rebuild(force=True)
    return kind


def _control(ctx: FaultContext, replica: str, method: str, body: dict[str, Any] | None) -> None:
    url = f"{ctx.control_url(replica)}/fault"
    try:
        response = loopback.client().request(method, url, json=body, timeout=CONTROL_TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise FaultError(f"{replica}: control API {method} {url} failed: {str(exc) or type(exc).__name__}") from exc
    if response.status_code != 200:
        try:
            answer = response.json()
        except ValueError:
            answer = None
        detail = answer.get("error", response.text) if isinstance(answer, dict) else response.text
        raise FaultError(f"{replica}: control API {method} {url} answered {response.status_code}: {detail}")


def ms(seconds: float) -> int:
    """Seconds to whole milliseconds, as Toxiproxy wants them."""
    return round(seconds * 1000)
