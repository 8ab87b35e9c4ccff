"""The scenario model: what a YAML scenario file may say, validated with pydantic.

``load_scenario(path)`` reads a file and returns a ``Scenario`` or raises ScenarioError
listing every problem with its file, line, field and what was expected.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.durations import Duration
from harness.errors import Problem, ScenarioError, not_utf8
from harness.expectations import EXPECTATIONS, Expectation
from harness.faults import FAULTS, Fault
from harness.gateways import GATEWAYS
from harness.gateways.envoy import EnvoyOptions
from harness.gateways.haproxy import HaproxyOptions
from harness.gateways.litellm import LitellmOptions
from harness.gateways.nginx import NginxOptions
from harness.memsize import MemorySize
from harness.own_config import read_native
from harness.own_config.binding import binding_problems, is_loopback, resolve_config_path
from harness.targets import resolve, split_target
from harness.yaml_source import Path as YamlPath
from harness.yaml_source import YamlDocument, key_text, load_yaml


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class McpHealthCheck(_Model):
    """A health check that speaks MCP: the gateway POSTs a JSON-RPC ``initialize`` request to each
    replica of an mcp pool and requires a valid ``InitializeResult`` in the body (see docs/faults.md)."""

    path: str = Field(default="/mcp", pattern=r"^/", description="The replicas' MCP endpoint.")
    protocol_version: Literal["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"] = Field(
        default="2025-11-25", description="The protocolVersion the check asks for and requires in the answer.")
    expect_body: list[Annotated[str, Field(min_length=1)]] | None = Field(
        default=None, min_length=1,
        description="Fragments the answer's body must contain, in this order (compact JSON as servers send it). "
                    "Default: the protocolVersion asked for, a capabilities object with tools, and serverInfo.")

    @property
    def body_fragments(self) -> list[str]:
        return self.expect_body or [f'"protocolVersion":"{self.protocol_version}"', '"capabilities":{',
                                    '"tools":', '"serverInfo":{']


class HealthCheck(_Model):
    """The gateway's active health check of every replica."""

    path: str = Field(default="/health", pattern=r"^/", description="HTTP path the gateway polls on each replica.")
    interval: Duration = Field(default=1.0, gt=0, description="Time between checks of one replica.")
    timeout: Duration = Field(default=0.5, gt=0, description="A check that takes longer fails.")
    unhealthy_threshold: int = Field(default=2, ge=1, description="Failed checks in a row before a replica is marked unhealthy.")
    healthy_threshold: int = Field(default=2, ge=1, description="Passed checks in a row before a replica is readmitted.")
    expected_statuses: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        default=[200], min_length=1, description="HTTP statuses that count as healthy.")
    no_traffic_interval: Duration = Field(
        default=60.0, gt=0,
        description="Envoy's check interval while the cluster has carried no traffic (Envoy's default: 60s). "
                    "Set it to the interval for detection in seconds right after start-up.")
    mcp: McpHealthCheck | None = Field(
        default=None, description="How replicas of mcp pools are checked: an MCP initialize request whose answer "
                                  "must be valid ('true' or {path, protocol_version, expect_body}); null: the same "
                                  "GET of `path` as every pool.")

    @field_validator("mcp", mode="before")
    @classmethod
    def _mcp_shorthand(cls, value: Any) -> Any:
        """``mcp: true`` is ``mcp: {}``; ``mcp: false`` is no MCP check."""
        return {} if value is True else None if value is False else value


class OutlierDetection(_Model):
    """Passive health: eject a replica after errors seen on real traffic."""

    consecutive_5xx: int | None = Field(default=5, ge=1, description="5xx (incl. connect failures and resets) in a row that eject a replica.")
    consecutive_gateway_failure: int | None = Field(default=None, ge=1, description="502/503/504 in a row that eject a replica.")
    interval: Duration = Field(default=10.0, gt=0, description="How often ejections are reviewed (un-ejection happens only then).")
    base_ejection_time: Duration = Field(default=30.0, gt=0, description="How long the first ejection lasts.")
    max_ejection_percent: int = Field(default=10, ge=0, le=100, description="Most replicas that may be ejected at once, in percent.")


class Retries(_Model):
    """Gateway retries of a failed request on another replica."""

    num_retries: int = Field(default=1, ge=0, le=10, description="Retries after the first try.")
    retry_on: list[Literal["connect-failure", "reset", "5xx", "gateway-error", "refused-stream",
                           "retriable-status-codes"]] = Field(
        default=["connect-failure", "reset"], min_length=1,
        description="Which failures are retried. None of Envoy's other words covers a 429: "
                    "retriable-status-codes with retriable_status_codes: [429] does.")
    per_try_timeout: Duration | None = Field(default=None, description="Time limit of each try (none by default).")
    retriable_status_codes: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        default_factory=list,
        description="The statuses retry_on's retriable-status-codes retries (Envoy's retriable_status_codes), "
                    "e.g. [429]; needs retriable-status-codes in retry_on.")

    @model_validator(mode="after")
    def _status_codes_need_their_word(self) -> Retries:
        wants = "retriable-status-codes" in self.retry_on
        if wants and not self.retriable_status_codes:
            raise ValueError("retry_on has retriable-status-codes: list the statuses in retriable_status_codes "
                             "(e.g. [429])")
        if self.retriable_status_codes and not wants:
            raise ValueError("retriable_status_codes is used only with retriable-status-codes in retry_on")
        return self


if TYPE_CHECKING:
    GatewayKind = str
else:  # to pydantic, one of the registered gateway kinds (harness/gateways/__init__.py)
    GatewayKind = Literal[tuple(GATEWAYS)]


class Gateway(_Model):
    """The gateway under test and its resilience settings."""

    kind: GatewayKind = Field(default="envoy", description="Which gateway runs the scenario (`chaosgate run "
                                                           "--gateway KIND` overrides it): " + ", ".join(GATEWAYS) + ".")
    health_check: HealthCheck | None = Field(default_factory=HealthCheck, description="Active health checking; null turns it off.")
    outlier_detection: OutlierDetection | None = Field(default=None, description="Passive health checking; off unless set.")
    panic_threshold: float = Field(
        default=50.0, ge=0, le=100,
        description="Below this percentage of healthy replicas Envoy ignores health and routes to all (default 50). "
                    "0 disables panic mode, so clients get '503 no healthy upstream' when no replica is healthy.")
    connect_timeout: Duration = Field(default=1.0, gt=0, description="Time limit to connect to a replica.")
    request_timeout: Duration = Field(default=15.0, description="Time limit of a whole request through the gateway (0: none).")
    retries: Retries | None = Field(default=None, description="Retry policy; no retries unless set.")
    envoy: EnvoyOptions = Field(default_factory=EnvoyOptions,
                                description="Envoy settings without a common field (used when kind is envoy).")
    haproxy: HaproxyOptions = Field(default_factory=HaproxyOptions,
                                    description="HAProxy settings without a common field (used when kind is haproxy).")
    nginx: NginxOptions = Field(default_factory=NginxOptions,
                                description="nginx settings without a common field (used when kind is nginx).")
    litellm: LitellmOptions = Field(default_factory=LitellmOptions,
                                    description="LiteLLM proxy settings without a common field (used when kind is litellm).")
    config: str | None = Field(
        default=None, min_length=1,
        description="The user's own gateway file (envoy.yaml, haproxy.cfg, nginx.conf, LiteLLM config.yaml), relative "
                    "to the scenario file: it runs as written, except that the bound blocks' endpoints become the "
                    "Toxiproxy listeners and the ports move (docs/own-config.md). The gateway's settings are then "
                    "read from it; the common fields above are not used.")
    bind: dict[Annotated[str, Field(min_length=1)], Annotated[str, Field(min_length=1)]] = Field(
        default={}, description="Which block of gateway.config (cluster, backend, upstream block, model group) is which "
                                "pool: {BLOCK: POOL}. A pool not named here is the block of the same name.")


class RestartPolicy(_Model):
    """The supervisor's backoff before restarting a dead replica (on the same port), as an orchestrator's."""

    initial_backoff: Duration = Field(default=1.0, ge=0, le=300, description="Wait before the first restart.")
    factor: float = Field(default=2.0, ge=1.0, le=10.0, description="Each restart in a row waits this many times longer.")
    max_backoff: Duration = Field(default=30.0, gt=0, le=3600, description="The longest wait; a replica up this long starts over.")


class UpstreamTls(_Model):
    """TLS between the gateway and a pool's replicas (certificates minted by harness/certs.py)."""

    server_name: str | None = Field(
        default=None, pattern=r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$",
        description="The name the gateway sends as SNI and requires in the certificate "
                    "(default '<pool>.upstream.test').")


DNS_DOMAIN = "chaosgate.test"  # replica i of pool p is <p>-<i>.chaosgate.test in the fake DNS server


class UpstreamDns(_Model):
    """The gateway finds the pool's replicas by name, through the harness's fake DNS server (fakes/dns.py):
    replica i of pool p is the name ``p-i.chaosgate.test`` (see docs/faults.md, DNS)."""

    resolution: Literal["strict", "logical"] = Field(
        default="strict", description="Envoy's STRICT_DNS (every answer is a host, re-resolved) or LOGICAL_DNS "
                                      "(one host, the first answer; needs replicas: 1).")
    refresh_rate: Duration = Field(default=5.0, gt=0, description="How often the gateway re-resolves (Envoy's default 5s).")
    failure_refresh_rate: Duration | None = Field(
        default=None, gt=0, description="Re-resolve this often after a failed resolution (backing off to 4x); "
                                        "default: refresh_rate.")
    ttl: int = Field(default=5, ge=0, le=86400, description="TTL in seconds of the fake DNS server's answers.")
    respect_ttl: bool = Field(default=False, description="Re-resolve when the answer's TTL ends instead of every refresh_rate.")
    lookup_family: Literal["v4_only", "v4_preferred", "auto", "all"] = Field(
        default="v4_preferred", description="Which records the gateway asks for: A only, A then AAAA, AAAA then A, "
                                            "or both. wrong_address and flip faults answer ::1, so they need AAAA.")
    query_timeout: int | None = Field(default=None, ge=1, le=60,
                                      description="c-ares per-query timeout in whole seconds (Envoy's default: 5).")
    query_tries: int | None = Field(default=None, ge=1, le=10, description="c-ares tries per query (default 4).")

    @staticmethod
    def hostname(pool: str, index: int) -> str:
        """The name replica ``index`` of ``pool`` has in the fake DNS server."""
        return f"{pool}-{index}.{DNS_DOMAIN}"


REAL_ADDRESS = r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):[0-9]{1,5}$"  # HOST:PORT, [v6]:PORT
# The fields that describe chaosgate's fake replicas, refused on a pool of the user's own servers (address).
FAKE_ONLY_FIELDS = ("ttft", "tokens_per_s", "memory_limit", "restart", "tls")


class Upstream(_Model):
    """A pool of identical fake replicas behind the gateway, or of the user's own servers (``address``)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$", description="Pool name, used in targets such as 'chat[0]'.")
    kind: Literal["openai", "anthropic", "mcp"] = Field(
        default="openai", description="What the replicas speak: 'openai' (fakes/llm.py), 'anthropic' "
                                      "(the Messages API, fakes/anthropic.py) or 'mcp' (fakes/mcp.py).")
    replicas: int = Field(default=1, ge=1, le=16, description="Number of replicas.")
    ttft: Duration = Field(default=0.02, description="Each replica's time to first token (openai and anthropic "
                                                     "pools), or the time each tools/call takes (mcp pools).")
    tokens_per_s: float = Field(default=400.0, gt=0, description="Each replica's token rate (openai and anthropic pools).")
    memory_limit: MemorySize | None = Field(
        default=None, description="Each replica's memory limit ('128Mi', '200MB'): a cgroup on the local runtime; "
                                  "past it the kernel's OOM killer ends the replica. None: no limit.")
    restart: RestartPolicy = Field(default_factory=lambda: RestartPolicy(),
                                   description="How the supervisor restarts a replica that died.")
    tls: UpstreamTls | None = Field(
        default=None, description="Serve TLS with certificates from a test CA, validated by the gateway: "
                                  "'true' or {server_name: ...}; off unless set.")

    dns: UpstreamDns | None = Field(
        default=None, description="Resolve the replicas by name through the fake DNS server: 'true' or "
                                  "{resolution, refresh_rate, ttl, ...}; off (addresses) unless set.")
    address: str | list[str] | None = \
        Field(default=None, description="A server of yours instead of a fake replica: HOST:PORT, or a list of them, "
                                        "one per replica (replicas defaults to their number). Toxiproxy sits in front "
                                        "of each; chaosgate starts no process for the pool, so only network and DNS "
                                        "faults apply (docs/own-config/real-upstreams.md). Off this machine only "
                                        "with --allow-host HOST.")
    fallback: str | None = Field(
        default=None, pattern=r"^[a-z][a-z0-9_-]*$",
        description="Another pool the gateway sends this pool's requests to when this pool's replicas are "
                    "unavailable (LiteLLM: router fallbacks between model groups, openai to anthropic included; "
                    "Portkey: its fallback strategy over the pools' loadbalance groups, openai to anthropic included; "
                    "Envoy: its replicas as priority-1 endpoints of this pool's cluster; HAProxy and nginx: as backup "
                    "servers; all three the same API only). "
                    "docs/scenario.md, Fallback pools.")

    @field_validator("address")
    @classmethod
    def _host_port(cls, value: str | list[str] | None) -> str | list[str] | None:
        for address in [value] if isinstance(value, str) else value or []:
            if not re.match(REAL_ADDRESS, address):
                raise ValueError(f"expected HOST:PORT (127.0.0.1:8000, [::1]:8000, localhost:11434), got {address!r}")
        if isinstance(value, list) and not 1 <= len(value) <= 16:
            raise ValueError(f"expected 1 to 16 addresses (one per replica), got {len(value)}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _replicas_from_addresses(cls, data: Any) -> Any:
        """``address: [a, b]`` without ``replicas`` is ``replicas: 2``."""
        if isinstance(data, dict) and isinstance(data.get("address"), list) and "replicas" not in data \
                and 1 <= len(data["address"]) <= 16:
            return {**data, "replicas": len(data["address"])}
        return data

    @property
    def addresses(self) -> list[str]:
        """The user's servers, one per replica (empty: chaosgate's fakes)."""
        return [] if self.address is None else [self.address] if isinstance(self.address, str) else list(self.address)

    @property
    def real(self) -> bool:
        """Whether the replicas are the user's own servers, not processes chaosgate starts."""
        return self.address is not None

    @field_validator("dns", mode="before")
    @classmethod
    def _dns_shorthand(cls, value: Any) -> Any:
        """``dns: true`` is ``dns: {}``; ``dns: false`` is addresses."""
        return {} if value is True else None if value is False else value

    @field_validator("tls", mode="before")
    @classmethod
    def _tls_shorthand(cls, value: Any) -> Any:
        """``tls: true`` is ``tls: {}``; ``tls: false`` is no TLS."""
        return {} if value is True else None if value is False else value

    @property
    def server_name(self) -> str:
        """The name the gateway expects on the replicas' certificates (and sends as SNI)."""
        return self.tls.server_name if self.tls and self.tls.server_name else f"{self.name}.upstream.test"


class Load(_Model):
    """The client load sent through the gateway (Locust, headless)."""

    users: int = Field(default=10, ge=1, le=200, description="Concurrent simulated users.")
    spawn_rate: float = Field(default=10.0, gt=0, description="Users started per second.")
    duration: Duration = Field(gt=0, le=3600, description="How long the load runs (at most 1h); faults are scheduled inside it.")
    mix: dict[Literal["chat", "chat_stream", "anthropic", "anthropic_stream", "mcp"], Annotated[float, Field(ge=0)]] = \
        Field(default={"chat": 1.0},
              description="Relative weight of each request type: chat and chat_stream (openai pools) and anthropic "
                          "and anthropic_stream (the official anthropic client's messages, plain and streamed, "
                          "against an anthropic pool) share the users of the Locust process; mcp (sessions of the "
                          "official mcp client against an mcp pool) gets its share of the users, at least one.")
    pool: str | None = Field(default=None, description="The openai pool the load goes to (default: the first openai pool).")
    anthropic_pool: str | None = Field(
        default=None, description="The anthropic pool the anthropic persona goes to (default: the first anthropic pool).")
    mcp_pool: str | None = Field(default=None, description="The mcp pool the mcp persona goes to (default: the first mcp pool).")
    wait: Duration = Field(default=0.0, description="Pause of each user between requests.")
    max_tokens: int = Field(default=16, ge=1, le=4096, description="max_tokens sent with each request.")
    request_timeout: Duration = Field(default=10.0, gt=0, description="Client-side time limit of one request.")
    workers: int | None = Field(
        default=None, ge=0, le=64,
        description="Locust worker processes driving the openai personas under a Locust master (docs/distributed.md); "
                    "None or 0: one load process, as without distribution. `chaosgate run --workers N` overrides it.")


def _union(registry: dict[str, type[Fault]] | dict[str, type[Expectation]]) -> Any:
    members = tuple(registry.values())
    return Annotated[Union[members], Field(discriminator="kind")]  # noqa: UP007 - built at runtime


if TYPE_CHECKING:  # to type checkers, each item is its seam's base class
    FaultSpec = Fault
    ExpectationSpec = Expectation
else:  # to pydantic, a union of every registered kind, told apart by `kind`
    FaultSpec = _union(FAULTS)
    ExpectationSpec = _union(EXPECTATIONS)


class Scenario(_Model):
    """One resilience scenario: a stack, a load, faults on a schedule, and what must happen."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Names the run and its output folder.")
    description: str = Field(default="", description="What the scenario demonstrates.")
    seed: int = Field(default=1, description="Seeds prompts and fake replica content, so runs repeat.")
    gateway: Gateway = Field(default_factory=Gateway)
    upstreams: list[Upstream] = Field(min_length=1)
    load: Load
    faults: list[FaultSpec] = Field(default=[])
    expect: list[ExpectationSpec] = Field(default=[])

    @property
    def pools(self) -> dict[str, int]:
        return {u.name: u.replicas for u in self.upstreams}

    @property
    def replicas(self) -> list[str]:
        return [f"{u.name}[{i}]" for u in self.upstreams for i in range(u.replicas)]

    @property
    def pool_kinds(self) -> dict[str, str]:
        return {u.name: u.kind for u in self.upstreams}

    @property
    def mcp_load_pool(self) -> str | None:
        """The pool the mcp persona goes to: ``load.mcp_pool``, else the first mcp pool."""
        return self.load.mcp_pool or next((u.name for u in self.upstreams if u.kind == "mcp"), None)

    @property
    def anthropic_load_pool(self) -> str | None:
        """The pool the anthropic persona goes to: ``load.anthropic_pool``, else the first anthropic pool."""
        return self.load.anthropic_pool or next((u.name for u in self.upstreams if u.kind == "anthropic"), None)

    @property
    def anthropic_persona_pool(self) -> str | None:
        """The anthropic pool the load's anthropic persona talks to; None when the mix has no such persona."""
        used = any(w > 0 for persona, w in self.load.mix.items() if persona.startswith("anthropic"))
        return self.anthropic_load_pool if used else None

    @property
    def load_pool(self) -> str:
        """The pool the load (chat requests) goes to: ``load.pool``, else the first openai pool."""
        return self.load.pool or next((u.name for u in self.upstreams if u.kind == "openai"), self.upstreams[0].name)


# -- loading --------------------------------------------------------------------------

def load_scenario(path: Path, gateway: str | None = None, gateway_config: Path | None = None,
                  allow_hosts: Iterable[str] = (), *, gateway_view: bool = True) -> Scenario:
    """Read and validate one scenario file; every problem is reported at once. ``gateway``
    overrides the file's ``gateway.kind`` (``--gateway``); the file's settings are checked against it.
    ``gateway_config`` overrides ``gateway.config`` (``--gateway-config``, relative to the working folder);
    ``allow_hosts``: hosts off this machine the gateway's file may send traffic to (``--allow-host``);
    ``gateway_view``: False when the gateway's view of health will not be read (``--attach`` without
    ``--attach-admin``): the expectations that need it are refused."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ScenarioError([Problem(str(path), None, None, "", f"cannot read file: {exc.strerror}")]) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column, message = not_utf8(data, exc)
        raise ScenarioError([Problem(str(path), line, column, "", message)]) from None
    return parse_scenario(text, str(path), gateway, gateway_config, allow_hosts, gateway_view=gateway_view)


def parse_scenario(text: str, file: str, gateway: str | None = None, gateway_config: Path | None = None,
                   allow_hosts: Iterable[str] = (), *, gateway_view: bool = True) -> Scenario:
    """Validate scenario YAML ``text`` (``file`` names it in messages and anchors a relative
    ``gateway.config``); ``gateway``, ``gateway_config``, ``allow_hosts``: see load_scenario."""
    doc = load_yaml(text, file)
    if not isinstance(doc.data, dict):
        raise ScenarioError([Problem(file, 1, 1, "", "expected a mapping with name, upstreams, load, faults and expect")])
    try:
        scenario = Scenario.model_validate(doc.data)
    except ValidationError as exc:
        by_field: dict[str, tuple[str, Problem]] = {}
        names: list[Problem] = []  # a mapping or a list where a name (or a mapping) may go
        for error in exc.errors():  # a union reports once per member: keep the first per field
            problem = _problem(doc, error)
            if error["type"] == "literal_error" and isinstance(error.get("input"), (dict, list)):
                names.append(problem)
            else:
                by_field.setdefault(problem.field, (error["type"], problem))
        for problem in names:  # the names are said unless the mapping's own errors say more (`window: {to: 1s}`)
            field = problem.field
            if any(other.startswith((f"{field}.", f"{field}[")) for other in by_field):
                continue
            said = by_field.get(field)
            if said is not None and said[0] in ("model_type", "dict_type", "model_attributes_type"):
                problem = replace(problem, message=problem.message.replace(", got ", ", or a mapping, got ", 1))
            elif said is not None:
                continue
            by_field[field] = ("literal_error", problem)
        raise ScenarioError([problem for _, problem in by_field.values()]) from None
    if gateway is not None:
        if gateway not in GATEWAYS:
            raise ScenarioError([Problem(file, None, None, "gateway.kind", f"unknown gateway {gateway!r} (--gateway); "
                                         f"expected one of {', '.join(GATEWAYS)}")])
        scenario = scenario.model_copy(update={"gateway": scenario.gateway.model_copy(update={"kind": gateway})})
    if gateway_config is not None or scenario.gateway.config is not None:
        own = gateway_config.resolve() if gateway_config is not None else \
            resolve_config_path(scenario.gateway.config or "", file)
        scenario = scenario.model_copy(update={"gateway": scenario.gateway.model_copy(update={"config": str(own)})})
    problems = _cross_check(scenario, doc, allow_hosts)
    if not gateway_view:
        problems += _without_gateway_view(scenario, doc)
    elif not getattr(GATEWAYS[scenario.gateway.kind], "health_view", True):
        problems += _without_gateway_view(scenario, doc, f"{scenario.gateway.kind} keeps no view of upstream health "
                                          "(no health checks, no ejection): judge what clients saw instead "
                                          "(error_rate, served_by, fallback_within)")
    if scenario.gateway.config is not None:
        try:
            native = read_native(scenario.gateway.kind, Path(scenario.gateway.config))
        except ScenarioError as exc:
            problems += [replace(p, field=p.field or "gateway.config") for p in exc.problems]
        else:
            problems += binding_problems(scenario, native, doc.locate, file, allow_hosts)
    if problems:
        raise ScenarioError(problems)
    return _for_gateway(scenario)


def _for_gateway(scenario: Scenario) -> Scenario:
    """The scenario as its gateway runs it: without the expectations scoped to other gateways."""
    expect = [e for e in scenario.expect if e.applies_to(scenario.gateway.kind)]
    return scenario if len(expect) == len(scenario.expect) else scenario.model_copy(update={"expect": expect})


def _problem(doc: YamlDocument, error: Any) -> Problem:
    loc = tuple(part for part in error["loc"] if not (isinstance(part, str) and part.startswith("literal[")))
    path = _data_path(doc.data, loc, error["type"] == "missing")  # (a name-or-mapping field's names are a union member called literal[...])
    if error["type"] == "union_tag_invalid" and _tag(error) != "kind":
        path = (*path, _tag(error))  # an unknown mode: point at the mode, not at the fault
    line, column = doc.locate(path)
    message = str(error["msg"]).removeprefix("Value error, ")
    given = error.get("input")
    if error["type"] == "missing":
        message = "required field is missing"
    elif error["type"] == "union_tag_invalid":
        expected = ", ".join(error["ctx"]["expected_tags"].replace("'", "").split(", "))
        message = f"unknown {_tag(error)} {error['ctx']['tag']!r}; expected one of {expected}"
    elif error["type"] == "union_tag_not_found":
        message = f"required field {_tag(error)!r} is missing"
    elif error["type"] == "extra_forbidden":
        message = "unknown field"
        if len(path) > 0:
            message += f" {path[-1]!r}"
    elif "got" not in message:
        message += f", got {_found(given)}"
    return Problem(doc.file, line, column, _render_path(doc.data, path), message)


def _found(value: Any) -> str:
    """A YAML value as a message names it: ``'fast'``, ``3``, ``a mapping``, ``a list``."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, (date, bytes)):  # YAML reads 2026-01-02 as a date, !!binary as bytes
        return f"the {'date' if isinstance(value, date) else 'binary value'} {value!s}"
    return repr(value)


def _tag(error: Any) -> str:
    """The field a discriminated union is told apart by: ``kind``, or e.g. ``mode`` inside a fault kind."""
    return str(error.get("ctx", {}).get("discriminator", "'kind'")).strip("'")


def _data_path(data: Any, loc: tuple[Any, ...], missing: bool = False) -> YamlPath:
    """Map a pydantic error location onto the data, dropping the union member names pydantic
    inserts (``faults.0.latency.jitter`` -> ``faults.0.jitter``, ``window.ExplicitWindow.to``):
    a part is kept when it is in the data (or is the field a ``missing`` error names)."""
    path: list[str | int] = []
    node: Any = data
    tag_dropped_at = -1
    for i, part in enumerate(loc):
        is_tag = isinstance(node, dict) and path and isinstance(path[-1], int) and part == node.get("kind") \
            and tag_dropped_at != len(path)  # a fault's or expectation's kind (once: it may also be a field)
        in_data = (isinstance(node, dict) and part in node) or (isinstance(node, list) and isinstance(part, int)) \
            or (missing and i == len(loc) - 1 and isinstance(node, dict))
        if is_tag or not in_data:
            tag_dropped_at = len(path)
            continue
        path.append(part)
        node = _child(node, part)
    return tuple(path)


def _child(node: Any, part: str | int) -> Any:
    """``node[part]`` when it exists in the data, else None."""
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _render_path(data: Any, path: YamlPath) -> str:
    """``faults[1].latency``, naming items by their ``name`` where they have one."""
    out = ""
    node = data
    for part in path:
        if isinstance(part, int):
            item = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            label = item.get("name") if isinstance(item, dict) and isinstance(item.get("name"), str) else None
            out += f"[name={label!r}]" if label else f"[{part}]"
        else:
            out += f".{key_text(part)}" if out else key_text(part)
        node = _child(node, part)
    return out


def _overlap(a: Any, b: Any, pools: dict[str, int]) -> bool:
    """Whether two faults are active on a common replica at a common moment."""
    try:
        shared = set(resolve(a.target, pools)) & set(resolve(b.target, pools))
    except ValueError:
        return False
    return bool(shared) and a.at < b.at + b.duration and b.at < a.at + a.duration


# The personas that talk to a pool of their own kind: (pool kind, the load's field naming the pool, its mix keys).
PERSONA_POOLS = (("mcp", "mcp_pool", ("mcp",)), ("anthropic", "anthropic_pool", ("anthropic", "anthropic_stream")))


def _check_persona_pools(scenario: Scenario, add: Callable[[YamlPath, str], None]) -> None:
    """The mcp and anthropic personas need a pool of their kind; the load's pool fields name one."""
    mix = {str(persona): weight for persona, weight in scenario.load.mix.items()}
    for pool_kind, field, personas in PERSONA_POOLS:
        pools = [u.name for u in scenario.upstreams if u.kind == pool_kind]
        named = getattr(scenario.load, field)
        if named is not None and scenario.pool_kinds.get(named) != pool_kind:
            kind = scenario.pool_kinds.get(named)
            add(("load", field), f"expected an {pool_kind} pool ({pool_kind} pools: {', '.join(pools) or 'none'}); "
                + (f"{named!r} is an {kind} pool" if kind else f"no pool named {named!r}"))
            continue
        for persona in personas:
            if mix.get(persona, 0) > 0 and not pools:
                add(("load", "mix", persona), f"the {persona} persona talks to an {pool_kind} pool, but no "
                    f"upstream has kind: {pool_kind}")


def _check_mcp(scenario: Scenario, add: Callable[[YamlPath, str], None]) -> None:
    """The mcp and anthropic personas need a pool of their kind; an MCP health check needs an mcp pool to check."""
    mcp_pools = [u.name for u in scenario.upstreams if u.kind == "mcp"]
    _check_persona_pools(scenario, add)
    hc = scenario.gateway.health_check
    if hc is not None and hc.mcp is not None and not mcp_pools:
        add(("gateway", "health_check", "mcp"), "an MCP health check needs an upstream with kind: mcp to check")


FALLBACK_KINDS = ("openai", "anthropic")  # the model APIs a gateway can fail over between


def follow_fallbacks(fallback_of: Mapping[str, str | None], pool: str) -> list[str]:
    """The pools ``pool`` falls back to, in order (its fallback, that pool's fallback, ...), from each pool's
    fallback in ``fallback_of``; a cycle or an unknown pool ends it."""
    chain: list[str] = []
    current = fallback_of.get(pool)
    while current is not None and current != pool and current not in chain and current in fallback_of:
        chain.append(current)
        current = fallback_of.get(current)
    return chain


def fallback_chain(scenario: Scenario, pool: str) -> list[str]:
    """The pools ``pool`` falls back to in ``scenario`` (follow_fallbacks)."""
    return follow_fallbacks({u.name: u.fallback for u in scenario.upstreams}, pool)


def _check_fallbacks(scenario: Scenario, add: Callable[[YamlPath, str], None]) -> None:
    """``upstreams[].fallback``: a pool that exists, not the pool itself, no cycle, model APIs only; rendered by
    chaosgate (with gateway.config, the file's own fallbacks apply). What each gateway can do with it is the
    gateway's settings_issues."""
    kinds = scenario.pool_kinds
    fallbacks = {u.name: u.fallback for u in scenario.upstreams}
    for i, pool in enumerate(scenario.upstreams):
        target = pool.fallback
        if target is None:
            continue
        where: YamlPath = ("upstreams", i, "fallback")
        if scenario.gateway.config is not None:
            add(where, "fallback pools are rendered by chaosgate; with gateway.config the gateway's own file says "
                "what falls back to what (LiteLLM: router_settings.fallbacks; Envoy: priorities)")
        elif target == pool.name:
            add(where, f"pool {pool.name!r} cannot fall back to itself; name another pool")
        elif target not in kinds:
            add(where, f"no upstream pool named {target!r} (pools: {', '.join(kinds)})")
        elif pool.kind not in FALLBACK_KINDS or kinds[target] not in FALLBACK_KINDS:
            add(where, f"fallback pools are for model APIs ({' or '.join(FALLBACK_KINDS)}); {pool.name!r} is "
                f"{pool.kind!r} and {target!r} is {kinds[target]!r}")
        else:
            seen = [pool.name]
            current: str | None = target
            while current is not None and current not in seen:
                seen.append(current)
                current = fallbacks.get(current)
            if current is not None:
                add(where, "the fallbacks make a cycle: " + " -> ".join([*seen, current]) + "; a fallback chain "
                    "must end in a pool without fallback")


def split_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT``) as (host, port); the host without brackets."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _check_real(scenario: Scenario, add: Callable[[YamlPath, str], None], allow_hosts: Iterable[str]) -> None:
    """A pool of the user's own servers (``address``): one address per replica, on this machine unless allowed,
    none of the fields that describe chaosgate's fakes, and only faults that need no fake (``Fault.fake_only``)."""
    allowed = {host.lower().strip("[]") for host in allow_hosts}
    for i, pool in enumerate(scenario.upstreams):
        if not pool.real:
            continue
        addresses = pool.addresses
        if len(addresses) != pool.replicas:
            add(("upstreams", i, "replicas"), f"upstream {pool.name!r} names {len(addresses)} address(es) and has "
                f"replicas: {pool.replicas}; each address is one replica (give a list of {pool.replicas} addresses, "
                f"or leave replicas out)")
        for j, address in enumerate(addresses):
            host, port = split_address(address)
            where: YamlPath = ("upstreams", i, "address", j) if isinstance(pool.address, list) else \
                ("upstreams", i, "address")
            if not 1 <= port <= 65535:
                add(where, f"expected a port from 1 to 65535, got {port}")
            if not is_loopback(host) and host.lower() not in allowed:
                add(where, f"{address} is not this machine: chaosgate sends load and faults only to loopback "
                    f"addresses unless you name the host with --allow-host {host}")
        for name in FAKE_ONLY_FIELDS:
            if name in pool.model_fields_set:
                add(("upstreams", i, name), f"{name} describes chaosgate's fake replicas; upstream {pool.name!r} "
                    f"is your own server (address), which chaosgate does not start")
    real = {pool.name: pool for pool in scenario.upstreams if pool.real}
    for i, fault in enumerate(scenario.faults):
        pool_name = split_target(fault.target)[0]
        if pool_name in real and fault.fake_only is not None:
            add(("faults", i), f"{fault.kind} faults need {fault.fake_only}; upstream {pool_name!r} is your own "
                f"server at {', '.join(real[pool_name].addresses)} (address), so only network and DNS faults apply "
                f"to it (docs/own-config/real-upstreams.md)")


def _without_gateway_view(scenario: Scenario, doc: YamlDocument, gateway_has_none: str | None = None) -> list[Problem]:
    """The expectations that need the gateway's view of health, refused when it is not read
    (``--attach`` without ``--attach-admin``; harness/attach.py), or when the gateway has none
    (``gateway_has_none`` says so: Portkey)."""
    from harness.attach import needs_gateway_view

    problems: list[Problem] = []
    for i, expectation in enumerate(scenario.expect):
        if (why := needs_gateway_view(expectation)) is not None and expectation.applies_to(scenario.gateway.kind):
            line, column = doc.locate(("expect", i))
            problems.append(Problem(doc.file, line, column, _render_path(doc.data, ("expect", i)),
                                    f"{expectation.kind} needs the gateway's view of health ({why}), but "
                                    f"{gateway_has_none}" if gateway_has_none is not None else
                                    f"{expectation.kind} needs the gateway's view of health ({why}), which chaosgate "
                                    "reads only with --attach-admin URL; give it, or judge this run without this "
                                    "expectation"))
    return problems


def _cross_check(scenario: Scenario, doc: YamlDocument, allow_hosts: Iterable[str] = ()) -> list[Problem]:
    """Rules that span fields: targets exist, faults fit in the load, names are unique."""
    problems: list[Problem] = []

    def add(path: YamlPath, message: str) -> None:
        line, column = doc.locate(path)
        problems.append(Problem(doc.file, line, column, _render_path(doc.data, path), message))

    kind = scenario.gateway.kind
    overridden = isinstance(doc.data.get("gateway"), dict) and doc.data["gateway"].get("kind", "envoy") != kind
    own_file = scenario.gateway.config is not None  # the gateway's settings are its file's, not these fields
    for issue in [] if own_file else GATEWAYS[kind].settings_issues(scenario):  # fields this gateway cannot honour
        if issue.error:
            add(issue.path, f"{kind} cannot honour this{' (--gateway ' + kind + ')' if overridden else ''}: "
                f"{issue.message}")
    names = [u.name for u in scenario.upstreams]
    for i, name in enumerate(names):
        if names.index(name) != i:
            add(("upstreams", i, "name"), f"pool {name!r} is defined twice")
        upstream = scenario.upstreams[i]
        if upstream.dns is not None and upstream.dns.resolution == "logical" and upstream.replicas != 1:
            add(("upstreams", i, "dns", "resolution"), "Envoy's LOGICAL_DNS has one endpoint, so a logical pool "
                f"needs replicas: 1 (it has {upstream.replicas}); use resolution: strict for several")
    chat_weight = sum(w for kind, w in scenario.load.mix.items() if kind in ("chat", "chat_stream"))
    if scenario.load.pool is not None and scenario.load.pool not in scenario.pools:
        add(("load", "pool"), f"no upstream pool named {scenario.load.pool!r} (pools: {', '.join(names)})")
    elif chat_weight > 0 and scenario.pool_kinds.get(scenario.load_pool) != "openai":
        where: YamlPath = ("load", "pool") if scenario.load.pool is not None else ("upstreams",)
        add(where, f"the load sends chat completions, so it needs an openai pool; {scenario.load_pool!r} is "
            f"{scenario.pool_kinds.get(scenario.load_pool)!r}")
    _check_mcp(scenario, add)
    _check_real(scenario, add, allow_hosts)
    _check_fallbacks(scenario, add)
    if sum(scenario.load.mix.values()) <= 0:
        add(("load", "mix"), "expected at least one request type with a weight above 0")
    labels: list[str] = []
    for i, fault in enumerate(scenario.faults):
        try:
            resolve(fault.target, scenario.pools)
        except ValueError as exc:
            add(("faults", i, "target"), str(exc))
        else:
            pool_kind = scenario.pool_kinds[split_target(fault.target)[0]]
            pool = next(u for u in scenario.upstreams if u.name == split_target(fault.target)[0])
            if fault.needs_memory_limit and pool.memory_limit is None and not pool.real:
                add(("faults", i, "target"), f"{fault.kind} faults need a memory limit to hit; set memory_limit "
                    f"on upstream {pool.name!r}")
            if fault.needs_tls and pool.tls is None and not pool.real:
                add(("faults", i, "target"), f"{fault.kind} faults act on replicas that serve TLS; set tls: true "
                    f"on upstream {pool.name!r}")
            if fault.pool_kinds is not None and pool_kind not in fault.pool_kinds:
                add(("faults", i, "target"), f"{fault.kind} faults act on {' or '.join(sorted(fault.pool_kinds))} "
                    f"pools; {split_target(fault.target)[0]!r} is an {pool_kind} pool")
            pool_problems = getattr(fault, "pool_problems", None)  # a kind's own rules about its pool (dns)
            for message in pool_problems(pool, scenario) if pool_problems is not None else []:
                add(("faults", i), message)
        if fault.at + fault.duration > scenario.load.duration:
            add(("faults", i, "for"), f"the fault ends at {fault.at + fault.duration:g}s, after the load ends "
                f"({scenario.load.duration:g}s); expected at + for <= load.duration")
        if fault.label in labels:
            add(("faults", i), f"two faults are both called {fault.label!r}; give them distinct names")
        labels.append(fault.label)
        for earlier in scenario.faults[:i]:
            if fault.exclusive and earlier.kind == fault.kind and _overlap(earlier, fault, scenario.pools):
                add(("faults", i), f"overlaps {earlier.label!r} on the same replica; two {fault.kind!r} faults "
                    "cannot be active on one replica at once (the first to end would end both)")
    for i, expectation in enumerate(scenario.expect):
        target = getattr(expectation, "target", None)
        if target is not None:
            try:
                resolve(target, scenario.pools)
            except ValueError as exc:
                add(("expect", i, "target"), str(exc))
        for j, gateway in enumerate(expectation.gateways or []):
            if gateway not in GATEWAYS:
                add(("expect", i, "gateways", j), f"unknown gateway {gateway!r}; expected one of {', '.join(GATEWAYS)}")
        if expectation.fault is not None and expectation.fault not in labels:
            add(("expect", i, "fault"), f"no fault called {expectation.fault!r} (faults: {', '.join(labels) or 'none'})")
        window = getattr(expectation, "window", None)
        if window is not None and not isinstance(window, str) and window.end <= window.start:
            add(("expect", i, "window"), "expected 'to' after 'from'")
        if (window in ("fault", "after_detection", "recovery") or expectation.kind in
                ("upstream_unhealthy", "upstream_healthy", "all_down_response", "fallback_within",
                 "stall_detected")) and not scenario.faults:
            add(("expect", i), "this expectation refers to a fault, but the scenario has no faults")
    return problems
