"""The gateway seam: render a gateway's config from the scenario, start it, read its view of health.

An adapter knows one gateway (Envoy, HAProxy, nginx, the LiteLLM proxy). It is given the
addresses of the upstream replicas (in practice, their Toxiproxy proxies) and answers: how to
start it, when it is ready, and which replicas it currently considers healthy. Its class also
says, before anything runs, which scenario settings it cannot honour (``settings_issues``:
errors for fields the scenario sets, notes for defaults that do not apply). Configuration traps
are not the adapter's business: they are the lint's (harness/lint/, one module per trap).

Gateway modules import harness.scenario only for type checking: harness.scenario imports this
package (the registry of kinds, the per-gateway settings blocks, the settings checks).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from harness.errors import ComponentMissing

if TYPE_CHECKING:
    from harness.scenario import Gateway, Scenario, UpstreamDns

# Every adapter stamps each response (its own error replies too) with the address of the replica
# it picked, so the load records where each request went: a reset replica cannot say it itself.
UPSTREAM_HEADER = "x-chaosgate-upstream"

YamlPath = tuple[str | int, ...]
OWN_CONFIG_FIELDS = frozenset({"kind", "config", "bind"})  # the gateway fields that still apply with gateway.config


@dataclass(frozen=True)
class UpstreamAddress:
    """Where the gateway reaches one replica of a pool."""

    pool: str
    replica: str
    host: str
    port: int
    kind: str = "openai"  # what the replica speaks (the pool's upstream kind)
    tls: UpstreamTlsTrust | None = None  # the replica serves TLS: what the gateway checks it against
    dns: UpstreamResolver | None = None  # ``host`` is a name the gateway resolves through this resolver
    fallback: str | None = None  # the pool the gateway sends this pool's requests to when it is unavailable


@dataclass(frozen=True)
class UpstreamResolver:
    """The DNS server a pool's names are resolved through (the fake DNS server), and how."""

    host: str            # the resolver's address, as the gateway's process reaches it
    port: int
    settings: UpstreamDns  # the pool's dns block: resolution, refresh rate, TTL handling, lookup family


@dataclass(frozen=True)
class UpstreamTlsTrust:
    """How the gateway validates a TLS replica: the CA it trusts and the name it expects."""

    ca_file: str       # PEM file of the test CA, as the gateway's process sees it
    server_name: str   # sent as SNI and required as a DNS name in the certificate


@dataclass(frozen=True)
class HostHealth:
    """The gateway's own view of one upstream address."""

    healthy: bool
    flags: str  # the gateway's words for why, e.g. '/failed_active_hc', 'DOWN L4CON'
    # The gateway's own account of the latest failure, where it gives one: the line of nginx's error log
    # before it disabled the server, HAProxy's check description and last check result. Not journalled.
    detail: str = ""

    @property
    def why(self) -> str:
        """The flags and the detail, as `chaosgate up` prints them."""
        return "; ".join(part for part in (self.flags, self.detail) if part)


@dataclass(frozen=True)
class SettingIssue:
    """A scenario setting a gateway cannot honour as written.

    ``error``: the scenario sets it and the gateway cannot do it (the scenario is refused at
    validation, at the field's file:line). Otherwise a note: the setting (usually a default) does
    not apply to this gateway; runs list it with the warnings, so nothing is dropped silently."""

    path: YamlPath   # where in the scenario document, e.g. ("gateway", "health_check", "no_traffic_interval")
    message: str
    error: bool = True

    @property
    def field(self) -> str:
        return ".".join(str(p) for p in self.path)


class GatewayAdapter(Protocol):
    """One gateway product, configured for one scenario run."""

    kind: str
    config_name: str  # the file write_config() writes in the run's folder, e.g. 'envoy.yaml'

    def write_config(self, upstreams: list[UpstreamAddress], run_dir: Path) -> Path:
        """Render the gateway's configuration into ``run_dir`` and return its path."""

    def argv(self, config: Path) -> list[str]:
        """The command line that starts the gateway with ``config`` (in the foreground)."""

    def is_ready(self) -> bool:
        """Whether the gateway accepts traffic (one quick probe, no waiting)."""

    def host_health(self) -> dict[str, HostHealth]:
        """The gateway's view of every upstream, keyed by ``host:port``; raises StackError if unreachable."""

    def version(self) -> str:
        """The gateway's version string."""

    @property
    def url(self) -> str:
        """Base URL clients send requests to."""

    @property
    def admin_url(self) -> str | None:
        """Base URL of the gateway's admin interface, if it has one."""


@runtime_checkable
class ReportsHealthRounds(Protocol):
    """A gateway whose active checks run in rounds it can list afterwards (LiteLLM): each round's
    ``started`` and ``written`` Unix times (``written`` None while under way), or None when it runs no
    checks. Journalled once at the end of the load as ``gateway.health_rounds``."""

    def health_rounds(self) -> list[dict[str, Any]] | None: ...


@dataclass(frozen=True)
class LoadTarget:
    """What a gateway needs the load to do beyond sending its requests to ``url`` (harness/load/): ``headers`` sent
    with every request (Portkey: its routing config, which it reads from each request only), and the response
    header that names the target which served (``upstream_header``), with its values mapped to the replicas'
    ``host:port`` (``upstreams``), which the load records as the request's upstream."""

    headers: dict[str, str] = field(default_factory=dict)
    upstream_header: str | None = None
    upstreams: dict[str, str] = field(default_factory=dict)
    # where the gateway serves the load's pools (Portkey: every pool at the root, its config routes): None keeps
    # the load's own path (a pool prefix for a pool other than the first)
    base_path: str | None = None
    anthropic_path: str | None = None


@runtime_checkable
class ShapesLoad(Protocol):
    """A gateway whose requests need more than its URL (``LoadTarget``); asked once its config is written."""

    def load_target(self) -> LoadTarget: ...


class GatewayClass(Protocol):
    """What the registry holds for each kind: the adapter's class. A class with ``health_view = False`` keeps no
    view of upstream health (Portkey): a run reads none and waits for none, and validation refuses the expectations
    that need one (harness/scenario.py)."""

    kind: str
    config_name: str
    runtimes: frozenset[str]  # the runtimes that can run this gateway ('local', 'docker')

    def __call__(self, settings: Gateway, listen_port: int, admin_port: int, load_pool: str, *,
                 bind_address: str = ..., published_listen_port: int | None = ...,
                 published_admin_port: int | None = ..., anthropic_pool: str | None = ...) -> GatewayAdapter:
        """An adapter for one run: listens on ``listen_port`` (and ``admin_port``, if it has an admin
        interface) on ``bind_address``; chat requests without a pool prefix go to ``load_pool``; the load's
        anthropic persona talks to ``anthropic_pool`` (None: the load has no such persona)."""

    def settings_issues(self, scenario: Scenario) -> list[SettingIssue]:
        """Scenario settings this gateway cannot honour (errors) or that do not apply to it (notes)."""


class GatewayProcessBase:
    """What every adapter is built from (``GatewayClass.__call__``): the scenario's gateway block,
    where the gateway binds, the pool that gets chat requests without a prefix, and the ports the
    host reaches it on (``published_*``: in a container they differ from the bound ones). An
    adapter adds its own state in ``_init_state`` and its own ``admin_url``."""

    def __init__(self, settings: Gateway, listen_port: int, admin_port: int, load_pool: str, *,
                 bind_address: str = "127.0.0.1", published_listen_port: int | None = None,
                 published_admin_port: int | None = None, anthropic_pool: str | None = None) -> None:
        self.settings = settings
        self.anthropic_pool = anthropic_pool
        self.listen_port = listen_port
        self.admin_port = admin_port
        self.load_pool = load_pool
        self.bind_address = bind_address
        self.published_listen_port = published_listen_port or listen_port
        self.published_admin_port = published_admin_port or admin_port
        self.own_facts: dict[str, Any] = {}  # what the rewrite of gateway.config learnt (harness/own_config/)
        # the host the ``published_*`` ports are reached on (another only for a gateway chaosgate attaches to)
        self.published_host = "127.0.0.1"
        self._init_state()

    def _init_state(self) -> None:
        """The adapter's own state, set up at construction."""

    @property
    def url(self) -> str:
        """Where the host sends requests to the gateway."""
        return f"http://{url_host(self.published_host)}:{self.published_listen_port}"

    def write_own_config(self, upstreams: list[UpstreamAddress], run_dir: Path, config_name: str) -> Path:
        """The user's own file (``gateway.config``) rewritten for this run (harness/own_config/): written
        into ``run_dir`` with its diff; what the rewrite learnt about it is kept in ``own_facts``."""
        from harness.own_config import write_native
        from harness.processes import free_port

        path, self.own_facts = write_native(self.settings, upstreams, run_dir, config_name,
                                            listen_port=self.listen_port, admin_port=self.admin_port,
                                            bind_address=self.bind_address, free_port=free_port)
        return path


def fallback_chain_of(pool: str, upstreams: list[UpstreamAddress]) -> list[str]:
    """The pools ``pool`` falls back to, in order, from the upstreams' own ``fallback`` (follow_fallbacks)."""
    from harness.scenario import follow_fallbacks

    return follow_fallbacks({u.pool: u.fallback for u in upstreams}, pool)


def fallback_fit_issues(scenario: Scenario, gateway: str, how: str, *, levels: int | None = None) -> list[SettingIssue]:
    """A fallback pool whose replicas join the pool's own cluster or backend (``how``): the same API (the gateway
    passes the client's request as it is, it translates no provider's API into another's), the same TLS and DNS
    (one cluster has one), and at most ``levels`` fallbacks in a chain."""
    from harness.scenario import fallback_chain

    issues: list[SettingIssue] = []
    pools = {u.name: u for u in scenario.upstreams}
    for i, pool in enumerate(scenario.upstreams):
        target = pools.get(pool.fallback or "")
        if target is None or target.name == pool.name:
            continue
        where = ("upstreams", i, "fallback")
        chain = fallback_chain(scenario, pool.name)
        if target.kind != pool.kind:
            issues.append(SettingIssue(where, f"{gateway} sends the fallback pool's replicas the request as the "
                                       f"client sent it: it does not translate {pool.kind}'s API into "
                                       f"{target.kind}'s (the Envoy AI Gateway would; use LiteLLM, or a fallback "
                                       f"pool of kind {pool.kind})"))
        elif (target.tls is None) != (pool.tls is None) or (target.tls is not None and
                                                              target.server_name != pool.server_name):
            issues.append(SettingIssue(where, f"the fallback pool's replicas join {pool.name!r}'s {how}, which has "
                                       "one TLS setting: give both pools the same tls"))
        elif (target.dns is None) != (pool.dns is None) or (target.dns is not None and target.dns != pool.dns):
            issues.append(SettingIssue(where, f"the fallback pool's replicas join {pool.name!r}'s {how}, which "
                                       "resolves its endpoints one way: give both pools the same dns (or none)"))
        elif levels is not None and len(chain) > levels:
            issues.append(SettingIssue(where, f"{gateway} has {levels} level of fallback ({how}); "
                                       f"{' -> '.join([pool.name, *chain])} has {len(chain)}"))
    return issues


def url_host(host: str) -> str:
    """``host`` as a URL names it (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host else host


def explicitly_set(model: Any, *names: str) -> bool:
    """Whether the scenario file itself sets ``model.<names[0]>.<names[1]>...`` (not a default)."""
    node = model
    for name in names:
        if node is None or name not in getattr(node, "model_fields_set", set()):
            return False
        node = getattr(node, name)
    return True


def not_applicable(scenario: Scenario) -> list[str]:
    """The notes of the scenario's gateway: settings that do not apply to it, as one line each."""
    from harness.gateways import GATEWAYS

    kind = scenario.gateway.kind
    if scenario.gateway.config is not None:  # the gateway's settings are read from its own file
        return [f"gateway.{name}: not used: the gateway's settings come from {scenario.gateway.config}"
                for name in sorted(scenario.gateway.model_fields_set) if name not in OWN_CONFIG_FIELDS]
    notes = [f"{issue.field}: not applicable to {kind}: {issue.message}"
             for issue in GATEWAYS[kind].settings_issues(scenario) if not issue.error]
    # another gateway's own block (kept so that one file runs on several gateways)
    notes += [f"gateway.{other}: not applicable to {kind}: these are {other}'s own settings"
              for other in GATEWAYS if other != kind and explicitly_set(scenario.gateway, other)]
    return notes


def traps(scenario: Scenario) -> list[str]:
    """The configuration traps the lint finds in the scenario (harness/lint/: one line each, without
    file positions), then the settings that do not apply to the scenario's gateway."""
    from harness.lint import lint_scenario

    return [f"{f.field}: {f.message} [{f.trap}]" for f in lint_scenario(scenario)] + not_applicable(scenario)


def debian_binary(name: str) -> str:
    """A gateway binary from a Debian package (/usr/sbin is not on every user's PATH)."""
    found = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
    if not found:
        raise ComponentMissing(f"{name} is not installed: run `bash .ci/setup` "
                               f"(.ci/setup.d/gateways.sh installs Debian's {name})")
    return found


def milliseconds(seconds: float) -> str:
    """A duration in the whole-milliseconds form HAProxy and nginx read, e.g. '1500ms'."""
    return f"{round(seconds * 1000)}ms"
