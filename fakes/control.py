"""The control API of a fake server: switch its fault mode at runtime, read its counters.

Served on the fake's control port (127.0.0.1 only, see fakes.serving), never on the port
clients and the gateway use::

    GET    /fault   the active mode, or {"mode": "none"}
    PUT    /fault   set the mode: a JSON body such as {"mode": "error_status", "status": 503, "rate": 0.5}
    DELETE /fault   back to normal service (idempotent)
    GET    /modes   the JSON Schema of every mode and its parameters
    GET    /stats   the server's counters
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T", bound=BaseModel)
log = logging.getLogger(__name__)
NONE = {"mode": "none"}


class FaultSwitch(Generic[M]):
    """The one active fault mode of a fake, and the seeded draw that decides which requests it hits."""

    def __init__(self, adapter: TypeAdapter[M], seed: int,
                 on_change: Callable[[M | None], None] | None = None) -> None:
        self.adapter = adapter
        self.active: M | None = None
        self.hits = 0  # requests the active mode was applied to, since it was set
        self._rng = random.Random(seed)
        self._on_change = on_change

    def set(self, mode: M | None) -> None:
        """Make ``mode`` the active one (None: normal service); the previous one ends first."""
        self.active, self.hits = mode, 0
        log.warning("fault mode: %s", json.dumps(self.describe()))
        if self._on_change is not None:
            self._on_change(mode)

    def draw(self, *kinds: type[T]) -> T | None:
        """The active mode if it is one of ``kinds`` and this request is one it hits (its ``rate``)."""
        mode = self.active
        if mode is None or not isinstance(mode, kinds):
            return None
        rate = getattr(mode, "rate", 1.0)
        if rate < 1.0 and self._rng.random() >= rate:
            return None
        self.hits += 1
        return mode

    def describe(self) -> dict[str, Any]:
        """The active mode as JSON, ``mode`` first."""
        if self.active is None:
            return dict(NONE)
        fields = self.active.model_dump(mode="json")
        return {"mode": fields.pop("mode"), **fields}


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        parts.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    return "; ".join(parts)


def create_control_app(switch: FaultSwitch[Any], stats: Callable[[], dict[str, Any]]) -> Starlette:
    """The control API over ``switch``; ``stats`` supplies the body of ``GET /stats``."""

    async def get_fault(request: Request) -> Response:
        return JSONResponse(switch.describe())

    async def put_fault(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"error": "the body must be JSON, e.g. {\"mode\": \"error_status\"}"}, 400)
        if body == NONE:
            switch.set(None)
            return JSONResponse(switch.describe())
        try:
            mode = switch.adapter.validate_python(body)
        except ValidationError as exc:
            return JSONResponse({"error": _validation_message(exc)}, 422)
        switch.set(mode)
        return JSONResponse(switch.describe())

    async def delete_fault(request: Request) -> Response:
        switch.set(None)
        return JSONResponse(switch.describe())

    async def modes(request: Request) -> Response:
        return JSONResponse(switch.adapter.json_schema())

    async def get_stats(request: Request) -> Response:
        return JSONResponse({**stats(), "fault": switch.describe(), "fault_hits": switch.hits})

    return Starlette(routes=[
        Route("/fault", get_fault, methods=["GET"]),
        Route("/fault", put_fault, methods=["PUT"]),
        Route("/fault", delete_fault, methods=["DELETE"]),
        Route("/modes", modes, methods=["GET"]),
        Route("/stats", get_stats, methods=["GET"]),
    ])
