"""What each journal line must hold: one pydantic model per event type, told apart by ``type``.

The models name the fields that judging and the report read (with their JSON types); anything
else an event carries is kept as it is. ``check_event`` turns one parsed line into a list of
readable problems ("latency: expected a number (seconds), got the string '0.05'"), so that
``read_journal`` can name every malformed line with its number and what was expected.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from harness.gateways import GATEWAYS
from harness.yaml_source import key_text

DAY = 86400.0  # no duration in a run is longer (a load lasts at most an hour)
Seconds = Annotated[float, Field(ge=0, le=DAY)]


class _Event(BaseModel):
    """Every event: its type and its wall-clock time; other fields are kept as written."""

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)

    ts: float = Field(description="the event's Unix time in seconds")


class OwnConfig(BaseModel):
    """The user's own gateway file (gateway.config), as the run read it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    file: str = Field(description="the file's path")
    text: str = Field(description="the file's text")


class AttachedTo(BaseModel):
    """The running gateway the run attached to (``--attach``; harness/attach.py)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    url: str = Field(description="where the load went (--attach)")
    admin_url: str | None = Field(default=None, description="where the gateway's view was read (--attach-admin)")


class RunStarted(_Event):
    type: Literal["run.started"]
    text: str = Field(description="the scenario's YAML text")
    file: str = Field(description="the scenario file's path")
    replicas: list[str] = Field(default=[], description="the replicas' names")
    warnings: list[str] = Field(default=[], description="warnings as text")
    gateway: Literal[tuple(GATEWAYS)] | None = Field(  # type: ignore[valid-type]
        default=None, description="the gateway kind the run used: " + ", ".join(GATEWAYS))
    command: str | None = None
    runtime: str | None = None
    gateway_config: OwnConfig | None = Field(default=None, description="the user's own gateway file the run used")
    allow_hosts: list[str] = Field(default=[], description="hosts off this machine the run allowed (--allow-host)")
    attach: AttachedTo | None = Field(default=None, description="the running gateway the run attached to (--attach)")


class ReplicaEndpoint(BaseModel):
    """Where the gateway reached one replica (its Toxiproxy listener)."""

    model_config = ConfigDict(extra="allow", strict=True)

    proxy_url: str = Field(description="the replica's Toxiproxy URL")
    gateway_address: str | None = None


class Endpoints(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    replicas: dict[str, ReplicaEndpoint] = Field(default={}, description="an object of replica name to endpoint")


class StackReady(_Event):
    type: Literal["stack.ready"]
    endpoints: Endpoints = Field(default_factory=Endpoints, description="an object with the stack's endpoints")
    gateway_version: str | None = None
    gateway_config: str | None = None
    gateway_config_diff: str | None = Field(default=None, description="the rewritten gateway.config against the user's")
    startup_seconds: Seconds | None = None
    phases: dict[str, Seconds] = Field(default={}, description="an object of phase name to seconds since start-up began")
    attempt_logs: dict[str, Any] = Field(default={}, description="an object naming the attempt logs the run kept")


class Request(_Event):
    type: Literal["request"]
    kind: str = Field(description="the request type, e.g. chat")
    latency: Seconds = Field(description="seconds until the response ended")
    status: int | None = Field(default=None, description="the HTTP status or null")
    error: str | None = Field(default=None, description="the error kind or null")
    replica: str | None = Field(default=None, description="the replica that served it or null")
    upstream: str | None = Field(default=None, description="the address the gateway picked or null")
    body: str | None = None
    ttft: Seconds | None = Field(default=None, description="seconds to the first token or null")
    id: str | None = Field(default=None, description="the load's request id or null")
    retry_after: str | None = Field(default=None, description="the Retry-After header of an error answer, or null")
    retry_after_ms: str | None = Field(default=None, description="the retry-after-ms header of an error answer, or null")
    model: str | None = Field(default=None, description="the model field of the answer, or null")


class AttemptEvent(_Event):
    """One try at a replica (harness/attempts.py): seen by the replica's process, or logged by the gateway."""

    type: Literal["attempt"]
    source: Literal["replica", "gateway"] = Field(default="replica", description="replica or gateway")
    replica: str | None = Field(default=None, description="the replica's name or null")
    request_id: str | None = Field(default=None, description="the load's request id or null")
    health: bool = False
    path: str | None = None
    status: int | None = Field(default=None, description="the HTTP status or null")
    flags: str | None = None


class AttemptAnswer(_Event):
    """A fake's answer to one try (harness/attempts.py): ``ts`` is when its status line went out."""

    type: Literal["attempt.answer"]
    replica: str = Field(description="the replica's name")
    request_id: str | None = Field(default=None, description="the load's request id or null")
    status: int | None = Field(default=None, description="the HTTP status or null")
    retry_after: float | None = Field(default=None, ge=0, description="the seconds its Retry-After asked for, or null")
    tokens: int = Field(default=0, ge=0, description="the content tokens it generated and sent")
    model: str | None = Field(default=None, description="the model it answered as, or null")
    ended: float | None = Field(default=None, description="when the answer ended (Unix time), or null")


class Health(_Event):
    type: Literal["health"]
    replica: str = Field(description="the replica's name")
    healthy: bool = Field(description="true or false")
    flags: str = ""
    answered: float | None = Field(default=None, description="when the gateway's answer to the poll came (Unix time)")


class GatewayHealth(_Event):
    type: Literal["gateway.health"]
    address: str = Field(description="the address the gateway checks, host:port")
    replica: str | None = Field(default=None, description="the replica at that address, or null")
    healthy: bool = Field(description="true or false")
    what: str = ""
    change: bool = Field(default=True, description="false: a passing check, which may be the one that readmits")


class FaultEvent(_Event):
    type: Literal["fault.started", "fault.cleared"]
    fault: str = Field(description="the fault's label")
    kind: str = Field(description="the fault kind")
    target: str = Field(description="the fault's target, e.g. chat[0]")
    replicas: list[str] = Field(min_length=1, description="the replicas it acted on")
    params: dict[str, Any] = {}


class Diagnosis(_Event):
    type: Literal["diagnosis"]
    replica: str = Field(description="the replica's name")
    key: str = ""
    cause: str | None = None
    layer: str | None = None
    evidence: str = ""
    error: str | None = None


class ProcessEvent(_Event):
    type: Literal["process.exited", "process.restarted", "process.ready"]
    replica: str = Field(description="the replica's name")
    oom: bool = False
    signal: str | None = None


class RunFinished(_Event):
    type: Literal["run.finished"]
    outcome: str = Field(default="failed", description="complete, interrupted or failed")
    error: str | None = None
    teardown_seconds: Seconds | None = None


class HealthRoundStamp(BaseModel):
    """One round of the gateway's background checks, as it stamped it (LiteLLM: harness/gateways/litellm_probe.py)."""

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)

    started: float = Field(description="the Unix time its checks began")
    written: float | None = Field(default=None, description="the Unix time its verdicts were written, or null")
    round: int | None = None


class HealthRounds(_Event):
    type: Literal["gateway.health_rounds"]
    gateway: str | None = None
    rounds: list[HealthRoundStamp] = Field(default=[], description="a list of rounds (started, written)")


class LoadWorker(_Event):
    """A distributed load worker joined the Locust master (harness/load/master.py)."""

    type: Literal["load.worker"]
    id: str = Field(description="the worker's id, as its requests' `worker` field says it")
    offset: float = Field(description="its clock minus the master's, in seconds")
    rtt: float = Field(description="the round trip the offset was measured over, in seconds")


class LoadWorkerLost(_Event):
    """A distributed load worker died mid-run."""

    type: Literal["load.worker_lost"]
    id: str = Field(description="the worker's id")
    how: str = ""


class Other(_Event):
    """Events that judging reads only the time of."""

    type: Literal["load.started", "hosts", "gateway.exited", "load.finished", "warning", "load.master"]


_EVENT: TypeAdapter[Any] = TypeAdapter(Annotated[Union[  # noqa: UP007 - a discriminated union
    RunStarted, StackReady, Request, AttemptEvent, AttemptAnswer, Health, GatewayHealth, FaultEvent, Diagnosis,
    ProcessEvent, RunFinished, HealthRounds, LoadWorker, LoadWorkerLost, Other],
    Field(discriminator="type")])

_EXPECTED = {  # pydantic's error type -> what the field should have been
    "float_type": "a number", "int_type": "an integer", "string_type": "a string", "bool_type": "true or false",
    "list_type": "a list", "dict_type": "an object", "model_type": "an object", "model_attributes_type": "an object",
    "finite_number": "a finite number", "int_from_float": "an integer", "too_short": "a list of at least one",
    "none_required": "null",
}


def check_event(event: dict[str, Any]) -> list[str]:
    """What is wrong with one parsed journal line (an object), as ``field: expected ..., got ...``."""
    try:
        _EVENT.validate_python(event)
    except ValidationError as exc:
        problems: dict[str, str] = {}
        for error in exc.errors():
            field, message = _describe(event, error)
            problems.setdefault(field, message)  # a field of several types fails once per type: keep one
        return [f"{field}: {message}" if field else message for field, message in problems.items()]
    return []


def _describe(event: dict[str, Any], error: Any) -> tuple[str, str]:
    kind = error["type"]
    loc = [str(part) for part in error["loc"][1:]]  # the first part is the union member (the event type)
    field = "".join(f"[{part}]" if isinstance(part, int) else f".{key_text(part)}"
                    for part in error["loc"][1:]).lstrip(".")  # odd keys quoted: a message stays one line
    if kind == "union_tag_not_found":
        return "type", "required field is missing; expected one of " + ", ".join(event_types())
    if kind == "union_tag_invalid":
        return "type", f"unknown event type {event.get('type')!r}; expected one of " \
                       + ", ".join(event_types())
    if kind == "missing":
        return field, f"required field is missing; expected {_described(event, loc) or 'a value'}"
    if kind == "literal_error":
        expected = str(error.get("ctx", {}).get("expected", "")).replace("'", "")
        return field, f"expected one of {expected}, got {found(error['input'])}"
    if kind in ("greater_than_equal", "less_than_equal"):
        kind = "seconds"
    what = {**_EXPECTED, "seconds": f"a number from 0 to {DAY:g}"}.get(kind, str(error["msg"]).lower())
    described = _described(event, loc)
    if described and described != what:
        what = f"{what} ({described})"
    return field, f"expected {what}, got {found(error['input'])}"


def _described(event: dict[str, Any], loc: list[str]) -> str | None:
    """The field's description in its event's model, when it has one."""
    model: type[BaseModel] | None = _MODELS.get(str(event.get("type")))
    parts = iter(loc)
    for part in parts:
        info = model.model_fields.get(part) if model is not None else None
        if info is None:
            return None
        annotation: Any = info.annotation
        if get_origin(annotation) is dict:  # an object of name -> model: the next part is a name
            annotation = get_args(annotation)[1]
            if next(parts, None) is None:
                return info.description
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
        if model is None or part == loc[-1]:
            return info.description
    return None


def found(value: Any) -> str:
    """A JSON value as a message names it: ``the string '0.5'``, ``an object``, ``null``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {value[:40]!r}" + ("..." if len(value) > 40 else "")
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, dict):
        return "an object" if value else "an empty object"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    return repr(value)[:40]


_MODELS: dict[str, type[BaseModel]] = {
    name: model
    for model in (RunStarted, StackReady, Request, AttemptEvent, AttemptAnswer, Health, GatewayHealth, FaultEvent,
                  Diagnosis, ProcessEvent, RunFinished, HealthRounds, LoadWorker, LoadWorkerLost, Other)
    for name in model.model_fields["type"].annotation.__args__  # type: ignore[union-attr]
}


def event_types() -> list[str]:
    return list(_MODELS)
