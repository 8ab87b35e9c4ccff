"""The Portkey AI gateway as the gateway under test: its config rendered from the scenario, sent by the load.

The open-source Portkey gateway (npm ``@portkey-ai/gateway`` 1.15.2, installed by .ci/setup.d/portkey.sh into
.tools/portkey) has no configuration file and no default config: it reads its routing config from each
request's ``x-portkey-config`` header (its source: the config is parsed from the request headers only; the
environment variables it reads are credentials, TLS files and TRUSTED_CUSTOM_HOSTS). So the adapter renders the
config (and writes it into the run folder, for people) and hands it to the load through the seam's load hook
(``load_target``: headers sent with every request, and the response header naming the target that served).

The scenario maps onto Portkey's config (docs/gateways.md, Portkey):

* each pool → a ``loadbalance`` strategy over its replicas (equal weights), each a target ``{provider,
  custom_host}``: ``openai`` with ``http://<proxy>/v1``, or ``anthropic`` with ``http://<proxy>/v1`` (Portkey
  translates the load's chat completion into Anthropic's Messages API); every replica through its Toxiproxy proxy;
* ``upstreams[].fallback`` → a ``fallback`` strategy over the load's pool and its fallback chain, in order
  (Portkey tries the next on any answer that is not 2xx, per request);
* the load's anthropic persona → a ``conditional`` strategy on top, routing the persona's model to its pool's
  group (Portkey's /v1/messages) and every other request to the load pool's; every pool is served at the root;
* ``retries`` → ``retry: {attempts: num_retries, on_status_codes}`` (retry_on 5xx → 500/502/503/504,
  gateway-error → 502/503/504; connection errors are retried whenever attempts > 0); Portkey retries the same
  target, after 1 s, 2 s, 4 s ... (async-retry's backoff, measured);
* ``request_timeout`` (or ``retries.per_try_timeout``) → ``request_timeout`` in milliseconds: Portkey's limit
  of each try of each target (it answers 408 when it cuts one).

Portkey has no health checks and no circuit breaker in the open-source build (a target's ``isOpen`` is set
only by Portkey's hosted control plane): it never takes a replica out, every request that the load balancer
sends to a dead replica pays for it. The adapter therefore has no view of health (``health_view`` False): the
run reads none, and expectations that need one are refused at validation. Which replica served is the
``x-portkey-last-used-option-index`` response header (``config.targets[1].targets[0]``), which the load maps
to the replica's address as it records each request.

Portkey starts with two preloads (``node --import``): portkey_bind.mjs binds its listener to the stack's address,
and portkey_headers.mjs hands it fetched responses whose headers it may edit. Without the second, Portkey 1.15.2
answers every streamed request 500 (``TypeError: immutable`` in its updateHeaders): npm resolves its
``@hono/node-server`` to 1.19.x, whose global Response keeps a fetched answer's immutable headers when Portkey
rebuilds it around its stream (the file says how; docs/gateways.md, Portkey, "Streams").
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from harness.errors import ComponentMissing, StackError
from harness.gateways.base import (GatewayProcessBase, HostHealth, LoadTarget, SettingIssue, UpstreamAddress,
                                   fallback_chain_of)

if TYPE_CHECKING:
    from harness.scenario import Gateway, Scenario

PORTKEY_VERSION = "1.15.2"  # what .ci/setup.d/portkey.sh installs
PORTKEY_DIR = Path(__file__).resolve().parents[2] / ".tools" / "portkey"
PACKAGE = Path("node_modules") / "@portkey-ai" / "gateway"
START_SCRIPT = PACKAGE / "build" / "start-server.js"
BIND_SHIM = Path(__file__).with_name("portkey_bind.mjs")
# Fetched responses with editable headers: without it every streamed answer is a 500 (TypeError: immutable; the
# file says why, docs/gateways.md measures it).
HEADERS_SHIM = Path(__file__).with_name("portkey_headers.mjs")
CONFIG_HEADER = "x-portkey-config"
SERVED_BY_HEADER = "x-portkey-last-used-option-index"  # e.g. config.targets[1].targets[0]
REQUEST_ID_HEADER = "x-chaosgate-request"  # forwarded to the replicas (forward_headers), so the fakes count tries
API_KEY = "sk-chaosgate-fake"
ANTHROPIC_MODEL = "claude-fake"  # the model the load's anthropic persona asks for (harness/load/config.py)
# Portkey's retries (async-retry with its defaults: minTimeout 1 s, factor 2, no randomisation): the k-th retry of
# a target waits 2^(k-1) s. Measured: 2 retries of a refused target, 3.02 s; 1 retry of a 1 s timeout, 3.02 s.
RETRY_FIRST_WAIT = 1.0
RETRY_FACTOR = 2.0
DEFAULT_RETRY_STATUSES = (429, 500, 502, 503, 504)  # Portkey's own, when retry.on_status_codes is not given
STATUSES_OF = {"5xx": (500, 502, 503, 504), "gateway-error": (502, 503, 504)}
PROBE_TIMEOUT = 1.0


def retry_waits(attempts: int) -> float:
    """The sum of Portkey's waits before ``attempts`` retries of one target: 1 + 2 + 4 + ... seconds."""
    return sum(RETRY_FIRST_WAIT * RETRY_FACTOR ** k for k in range(attempts))


def portkey_start_script() -> Path:
    """Portkey's start-server.js in the project's tool folder; ComponentMissing if set-up has not installed it."""
    script = PORTKEY_DIR / START_SCRIPT
    if not script.is_file():
        raise ComponentMissing(f"the Portkey gateway is not installed: run `bash .ci/setup` "
                               f"(.ci/setup.d/portkey.sh installs @portkey-ai/gateway@{PORTKEY_VERSION} with npm "
                               f"into {PORTKEY_DIR})")
    return script


def node_binary() -> str:
    found = shutil.which("node")
    if not found:
        raise ComponentMissing("node (Node.js >= 18) is not installed: the Portkey gateway runs on it "
                               "(apt-get install nodejs)")
    return found


def portkey_binary() -> str:
    """What the integration tests require (tests/integration/conftest.py): node and Portkey's start script."""
    node_binary()
    return str(portkey_start_script())


def status_codes(retry_on: list[str]) -> list[int]:
    """The statuses Portkey retries for the scenario's retry_on (connection errors need none: always retried)."""
    return sorted({code for what in retry_on for code in STATUSES_OF.get(what, ())})


def try_limit(settings: Gateway) -> float:
    """Seconds Portkey gives each try of a target (its request_timeout): per_try_timeout, else request_timeout;
    0: none."""
    retries = settings.retries
    if retries is not None and retries.per_try_timeout:
        return retries.per_try_timeout
    return settings.request_timeout


def _target(upstream: UpstreamAddress) -> dict[str, Any]:
    provider = "anthropic" if upstream.kind == "anthropic" else "openai"
    return {"provider": provider, "api_key": API_KEY, "custom_host": f"http://{upstream.host}:{upstream.port}/v1"}


def _pool(name: str, upstreams: list[UpstreamAddress]) -> list[UpstreamAddress]:
    return [u for u in upstreams if u.pool == name]


def render(settings: Gateway, upstreams: list[UpstreamAddress], load_pool: str,
           anthropic_pool: str | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """The Portkey config for the load's pool (and, with ``anthropic_pool``, the anthropic persona's), and which
    target index (as Portkey names it in x-portkey-last-used-option-index) is which replica address (host:port).

    A pool is a ``loadbalance`` group over its replicas, inside a ``fallback`` over its fallback chain when it has
    one. With the anthropic persona, a ``conditional`` strategy sends the requests whose model is the persona's
    (``params.model``) to its pool's group and every other request to the load pool's."""
    served: dict[str, str] = {}

    def loadbalance(name: str, prefix: str) -> dict[str, Any]:
        members = _pool(name, upstreams)
        if not members:
            raise StackError(f"the portkey adapter found no replicas of pool {name!r}")
        for i, u in enumerate(members):
            served[f"{prefix}.targets[{i}]"] = f"{u.host}:{u.port}"
        return {"strategy": {"mode": "loadbalance"}, "targets": [_target(u) for u in members]}

    def group(pool: str, prefix: str) -> dict[str, Any]:
        chain = [pool, *fallback_chain_of(pool, upstreams)]
        if len(chain) == 1:
            return loadbalance(pool, prefix)
        return {"strategy": {"mode": "fallback"},
                "targets": [loadbalance(name, f"{prefix}.targets[{i}]") for i, name in enumerate(chain)]}

    if anthropic_pool is None or anthropic_pool == load_pool:
        config = group(load_pool, "config")
    else:
        config = {"strategy": {"mode": "conditional", "default": "chat",
                               "conditions": [{"query": {"params.model": {"$eq": ANTHROPIC_MODEL}},
                                               "then": "anthropic"}]},
                  "targets": [{"name": "chat", **group(load_pool, "config.targets[0]")},
                              {"name": "anthropic", **group(anthropic_pool, "config.targets[1]")}]}
    if (retries := settings.retries) is not None and retries.num_retries > 0:
        config["retry"] = {"attempts": retries.num_retries, "on_status_codes": status_codes(list(retries.retry_on))}
    if (limit := try_limit(settings)) > 0:
        config["request_timeout"] = round(limit * 1000)
    config["forward_headers"] = [REQUEST_ID_HEADER]
    return config, served


class PortkeyGateway(GatewayProcessBase):
    """The Portkey AI gateway configured from a scenario's ``gateway`` block (the config travels per request)."""

    kind = "portkey"
    config_name = "portkey-config.json"
    runtimes = frozenset({"local"})
    health_view = False  # no health checks, no circuit breaker: nothing to read (module docstring)
    startup_timeout = 60.0  # measured 0.9-4.3 s on a 2-core machine (its bundle's import; docs/gateways.md)

    def _init_state(self) -> None:
        """``admin_port`` is unused: Portkey has no admin interface."""
        self._http = httpx.Client(timeout=PROBE_TIMEOUT)
        self.config: dict[str, Any] = {}
        self.served_by: dict[str, str] = {}

    @property
    def admin_url(self) -> str | None:
        return None

    def write_config(self, upstreams: list[UpstreamAddress], run_dir: Path) -> Path:
        self.config, self.served_by = render(self.settings, upstreams, self.load_pool, self.anthropic_pool)
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / self.config_name
        path.write_text(json.dumps(self.config, indent=2) + "\n")
        return path

    def load_target(self) -> LoadTarget:
        """The config as every request of the load sends it, and how the load reads which replica served."""
        return LoadTarget(headers={CONFIG_HEADER: json.dumps(self.config, separators=(",", ":"))},
                          upstream_header=SERVED_BY_HEADER, upstreams=dict(self.served_by),
                          base_path="", anthropic_path="")  # one config routes every pool: all at the root

    def argv(self, config: Path) -> list[str]:
        env = shutil.which("env") or "/usr/bin/env"
        return [env, f"CHAOSGATE_BIND_ADDRESS={self.bind_address}", "NODE_ENV=production",
                node_binary(), "--import", BIND_SHIM.as_uri(), "--import", HEADERS_SHIM.as_uri(),
                str(portkey_start_script()),
                f"--port={self.listen_port}", "--headless"]

    def is_ready(self) -> bool:
        try:
            return self._http.get(f"{self.url}/").status_code == 200
        except httpx.HTTPError:
            return False

    def host_health(self) -> dict[str, HostHealth]:
        """Portkey keeps no view of upstream health (no checks, no circuit breaker): none to report."""
        return {}

    def version(self) -> str:
        try:
            return str(json.loads((PORTKEY_DIR / PACKAGE / "package.json").read_text())["version"])
        except (OSError, ValueError, KeyError):
            return "unknown"

    @staticmethod
    def settings_issues(scenario: Scenario) -> list[SettingIssue]:
        return settings_issues(scenario)


def settings_issues(scenario: Scenario) -> list[SettingIssue]:
    """What Portkey cannot honour (errors, for what the file sets) or what does not apply (notes)."""
    g = scenario.gateway
    gw = ("gateway",)
    issues: list[SettingIssue] = []
    if g.health_check is not None:
        issues.append(SettingIssue((*gw, "health_check"), "Portkey has no health checks: it never takes a target "
                                   "out, each request the load balancer sends to a dead replica fails (or falls "
                                   "back) on its own", error=False))
    if g.outlier_detection is not None:
        issues.append(SettingIssue((*gw, "outlier_detection"), "the open-source Portkey gateway has no circuit "
                                   "breaker or ejection (only Portkey's hosted control plane opens a target)"))
    issues.append(SettingIssue((*gw, "panic_threshold"), "Portkey has no notion of healthy replicas", error=False))
    issues.append(SettingIssue((*gw, "connect_timeout"), "Portkey has one time limit per try (request_timeout), no "
                               "connect timeout", error=False))
    if g.request_timeout > 0:
        issues.append(SettingIssue((*gw, "request_timeout"), "Portkey's request_timeout limits each try of each "
                                   "target (it answers 408 when it cuts one), not the whole request", error=False))
    if (retries := g.retries) is not None:
        issues.append(SettingIssue((*gw, "retries", "retry_on"), "Portkey retries every connection error once "
                                   "retries are on, and the statuses listed in on_status_codes (5xx: 500, 502, 503, "
                                   "504; gateway-error: 502, 503, 504); it retries the same target, never another "
                                   "replica, after 1s, 2s, 4s, ...", error=False))
        if "refused-stream" in retries.retry_on:
            issues.append(SettingIssue((*gw, "retries", "retry_on"), "Portkey has no HTTP/2 refused-stream retry "
                                       "(it speaks HTTP/1.1 to targets)", error=False))
    for i, pool in enumerate(scenario.upstreams):
        if pool.kind == "mcp":
            issues.append(SettingIssue(("upstreams", i, "kind"), "Portkey is an LLM gateway: the portkey adapter "
                                       "routes openai and anthropic pools only"))
        if pool.tls is not None:
            issues.append(SettingIssue(("upstreams", i, "tls"), "the portkey adapter does not speak TLS to replicas yet"))
        if pool.dns is not None:
            issues.append(SettingIssue(("upstreams", i, "dns"), "the portkey adapter reaches replicas by address only "
                                       "(no DNS resolution)"))
    return issues
