"""The LiteLLM proxy as the gateway under test: config rendered from the scenario, health from its router.

LiteLLM (PyPI ``litellm[proxy]``, the ``litellm`` extra of this project) runs as a process in
front of the fake model replicas: each replica of the load's openai pool is one deployment of the
model ``fake-model`` in its ``model_list``, ``api_base`` pointing at the replica's Toxiproxy proxy.
The common gateway fields map onto LiteLLM's own knobs (docs/gateways.md, LiteLLM):

* ``health_check`` → ``general_settings.background_health_checks`` every ``health_check_interval``
  (whole seconds), each a real chat completion per deployment (LiteLLM never GETs a health path),
  with ``enable_health_check_routing`` so a deployment that failed its last check gets no traffic,
  and ``model_info.health_check_timeout``;
* ``outlier_detection`` → the router's cooldown: ``allowed_fails`` = consecutive_5xx − 1 (the
  deployment cools down on the next failure within ``cooldown_time``), ``cooldown_time`` =
  base_ejection_time; without it, ``disable_cooldowns: true``;
* ``retries.num_retries`` → ``num_retries`` (0 without retries); ``request_timeout`` → ``timeout``.

Its view of every deployment comes from inside the proxy: harness/gateways/litellm_probe.py, loaded
through LiteLLM's custom-callback hook, serves ``GET /chaosgate/deployments`` (the router's cooldown
list, as used to route every request, and the last health-check verdicts) and stamps every answer
with ``x-chaosgate-upstream`` (the deployment's host:port). LiteLLM never reaches the internet: the
model cost map is the bundled one (``LITELLM_LOCAL_MODEL_COST_MAP``), telemetry is off, and the only
addresses in its config are the replicas' proxies on 127.0.0.1.
"""

from __future__ import annotations

import shutil
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field

from harness.durations import Duration
from harness.errors import ComponentMissing, StackError
from harness.gateways.base import (GatewayProcessBase, HostHealth, SettingIssue, UpstreamAddress, explicitly_set,
                                   fallback_chain_of)

if TYPE_CHECKING:
    from harness.scenario import Gateway, Scenario

MODEL_NAME = "fake-model"  # what the load asks for (harness/load/worker.py)
PROBE_MODULE = "chaosgate_litellm_probe"  # the probe's file name beside the config (LiteLLM imports it from there)
PROBE_SOURCE = Path(__file__).with_name("litellm_probe.py")
DEPLOYMENTS_PATH = "/chaosgate/deployments"
ROUNDS_PATH = "/chaosgate/health_rounds"  # every background check round, stamped by the proxy (litellm_probe.py)
HEALTH_EVENT_LOG = "litellm-health.jsonl"  # each change of a deployment's health, stamped by the proxy (the probe)
ROUNDS_TRIES, ROUNDS_TIMEOUT = 3, 5.0  # asked once after the load; a dead proxy costs 3 refused connections
# How long the harness waits for the proxy to answer GET /chaosgate/deployments (its own busy event loop
# answers it); a slower answer is no sample. Also bounds how early or late a sample can be stamped
# (harness/promise/litellm.py PROBE_DELAY).
PROBE_TIMEOUT = 1.0
# The proxy's environment. Keeps LiteLLM on the machine: the bundled model cost map instead of a download at import, no
# feedback banner, no admin UI or API docs to serve.
PROXY_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_DONT_SHOW_FEEDBACK_BOX": "True",
    "DISABLE_ADMIN_UI": "True",
    "NO_DOCS": "True",
    "NO_REDOC": "True",
    "DISABLE_SCHEMA_UPDATE": "True",
    # A model name LiteLLM maps to a Hugging Face tokenizer (llama-3..., in a user's own file) makes it fetch the
    # tokenizer from the Hub at the first request, retrying for 23 s; offline, it counts with tiktoken at once.
    "HF_HUB_OFFLINE": "1",
    # The proxy has died of SIGSEGV mid-run (journalled as gateway.exited; docs/gateways.md, LiteLLM): with
    # this, Python writes every thread's traceback to the proxy's log when it crashes.
    "PYTHONFAULTHANDLER": "1",
}
# The proxy's command line reads these from the environment when a flag is not given. Inherited from
# a CI job or a shell, some change what is under test or end the proxy mid-run (with one worker,
# MAX_REQUESTS_BEFORE_RESTART makes uvicorn exit after that many requests, the observer's 20 Hz
# polls included; DEBUG floods the log and slows the proxy), so the adapter unsets them all.
CLI_ENV = ("HOST", "PORT", "NUM_WORKERS", "GRANIAN_RUNTIME_THREADS", "DEBUG", "DETAILED_DEBUG", "SSL_KEYFILE_PATH",
           "SSL_CERTFILE_PATH", "KEEPALIVE_TIMEOUT", "TIMEOUT_WORKER_HEALTHCHECK", "MAX_REQUESTS_BEFORE_RESTART",
           "MAX_REQUESTS_BEFORE_RESTART_JITTER", "LIMIT_CONCURRENCY", "PROMETHEUS_METRICS_PORT")


class LitellmOptions(BaseModel):
    """LiteLLM settings that have no common gateway field (``gateway.litellm`` in a scenario)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    health_check_routing: bool = Field(
        default=True, description="Route around deployments whose last background health check failed "
                                  "(LiteLLM's enable_health_check_routing); false: the checks only report.")
    health_check_staleness: int | None = Field(
        default=None, ge=1, le=86400,
        description="Seconds after which a health-check verdict is ignored (LiteLLM's "
                    "health_check_staleness_threshold; its default: 600).")
    stream_timeout: Duration | None = Field(
        default=None, gt=0,
        description="Time limit of a streamed call (LiteLLM's router stream_timeout; without it, timeout = "
                    "request_timeout limits streams too): what ends a stream stalled before its first token.")


def litellm_binary() -> str:
    """The ``litellm`` proxy CLI from this environment (the project's ``litellm`` extra), else from PATH."""
    beside_python = Path(sys.executable).parent / "litellm"
    found = str(beside_python) if beside_python.exists() else shutil.which("litellm")
    if not found:
        raise ComponentMissing("the LiteLLM proxy is not installed: run `bash .ci/setup` "
                               "(or pip install -e '.[litellm]', which installs litellm[proxy])")
    return found


def _whole_seconds(seconds: float) -> int | None:
    """``seconds`` as a whole number of seconds ≥ 1, else None."""
    return int(seconds) if seconds >= 1 and float(seconds).is_integer() else None


class LitellmGateway(GatewayProcessBase):
    """The LiteLLM proxy configured from a scenario's ``gateway`` block."""

    kind = "litellm"
    config_name = "litellm.yaml"
    runtimes = frozenset({"local"})
    # Importing the proxy takes 8 s on an idle 2-core machine and over 20 s on a busy one.
    startup_timeout = 90.0

    def _init_state(self) -> None:
        """``admin_port`` is unused: the probe's route is on the proxy's own port."""
        self._http = httpx.Client(timeout=PROBE_TIMEOUT)
        self.load_model = MODEL_NAME  # the model the load asks for: the load pool's model group with gateway.config
        self._own_env: dict[str, str] = {}  # variables the user's file refers to that this machine lacks (api keys)

    @property
    def effective(self) -> Gateway:
        """The gateway settings the proxy runs with: the scenario's block, or, with gateway.config, those read
        from the user's file for the load pool's model group (harness/own_config/litellm.py)."""
        settings = self.own_facts.get("settings", {}).get(self.load_pool)
        return settings if settings is not None else self.settings

    @property
    def admin_url(self) -> str:
        return f"{self.url}{DEPLOYMENTS_PATH}"

    # -- configuration -------------------------------------------------------------
    def config(self, upstreams: list[UpstreamAddress]) -> dict[str, Any]:
        s = self.settings
        pool = [u for u in upstreams if u.pool == self.load_pool]
        if not pool:
            raise StackError(f"the litellm adapter found no replicas of the load's pool {self.load_pool!r}")
        model_info_extra: dict[str, Any] = {}
        general: dict[str, Any] = {
            # No master key: the proxy listens on 127.0.0.1 only and the load sends no credentials.
            "dangerously_permit_weak_or_unset_master_key": True,
            "disable_spend_logs": True,
            # x- headers on to the replicas: each try carries the load's x-chaosgate-request (harness/attempts.py)
            "forward_client_headers_to_llm_api": True,
        }
        if (hc := s.health_check) is not None:
            interval = _whole_seconds(hc.interval)
            if interval is None:  # settings_issues refuses this before a run; guard direct use too
                raise StackError(f"LiteLLM's health_check_interval is whole seconds; got {hc.interval:g}s")
            general.update({"background_health_checks": True, "health_check_interval": interval,
                            "enable_health_check_routing": s.litellm.health_check_routing})
            if s.litellm.health_check_staleness is not None:
                general["health_check_staleness_threshold"] = s.litellm.health_check_staleness
            model_info_extra = {"health_check_timeout": hc.timeout, "health_check_max_tokens": 1}
        router: dict[str, Any] = {
            "routing_strategy": "simple-shuffle",
            "num_retries": s.retries.num_retries if s.retries is not None else 0,
            "retry_after": 0,
        }
        if s.request_timeout > 0:
            router["timeout"] = s.request_timeout
        if s.litellm.stream_timeout is not None:
            router["stream_timeout"] = s.litellm.stream_timeout
        if (od := s.outlier_detection) is not None:
            router["allowed_fails"] = max(0, (od.consecutive_5xx or 1) - 1)
            router["cooldown_time"] = od.base_ejection_time
        else:
            router["disable_cooldowns"] = True
        # Each pool a model group: the load's is the model the load asks for, any other is named after its pool.
        names = {self.load_pool: MODEL_NAME}
        groups = [(MODEL_NAME, pool), *((names.setdefault(name, name), [u for u in upstreams if u.pool == name])
                                        for name in dict.fromkeys(u.pool for u in upstreams if u.kind != "mcp")
                                        if name != self.load_pool)]
        # after num_retries on its own group, a request goes to each group of the pool's fallback chain in turn
        fallbacks = [{names[name]: [names[f] for f in chain]} for name in names
                     if (chain := fallback_chain_of(name, upstreams)) and all(f in names for f in chain)]
        if fallbacks:
            router["fallbacks"] = fallbacks
        return {
            "model_list": [{
                "model_name": group,
                "litellm_params": _params(u, MODEL_NAME if group == MODEL_NAME else group),
                "model_info": {"id": _deployment_id(u), **model_info_extra},
            } for group, members in groups for u in members],
            "router_settings": router,
            "litellm_settings": {"telemetry": False, "callbacks": [f"{PROBE_MODULE}.probe"],
                                 "drop_params": True},
            "general_settings": general,
        }

    def write_config(self, upstreams: list[UpstreamAddress], run_dir: Path) -> Path:
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PROBE_SOURCE, run_dir / f"{PROBE_MODULE}.py")
        if self.settings.config is not None:  # the user's own config.yaml (harness/own_config/litellm.py)
            path = self.write_own_config(upstreams, run_dir, self.config_name)
            for module in self.own_facts.get("modules", []):  # the user's custom callbacks, imported from beside it
                source = Path(module)
                if source.is_file():
                    target = run_dir / source.relative_to(Path(self.settings.config).parent)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source, target)
            self.load_model = self.own_facts.get("models", {}).get(self.load_pool, MODEL_NAME)
            self._own_env = dict(self.own_facts.get("env", {}))
            return path
        path = run_dir / self.config_name
        path.write_text("# Rendered by chaosgate from the scenario's gateway block (harness/gateways/litellm.py).\n"
                        + yaml.safe_dump(self.config(upstreams), sort_keys=False))
        return path

    def argv(self, config: Path) -> list[str]:
        env = shutil.which("env") or "/usr/bin/env"
        return [env, *(f"--unset={key}" for key in CLI_ENV),
                *(f"{key}={value}" for key, value in {**self._own_env, **PROXY_ENV}.items()),
                litellm_binary(),
                "--config", str(config), "--host", self.bind_address, "--port", str(self.listen_port),
                "--num_workers", "1"]

    # -- observation ----------------------------------------------------------------
    def _deployments(self) -> list[dict[str, Any]]:
        try:
            response = self._http.get(self.admin_url)
            response.raise_for_status()
            listed = response.json()["deployments"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise StackError(f"the LiteLLM proxy's {DEPLOYMENTS_PATH} at {self.url} did not answer: {exc}") from exc
        return list(listed)

    def is_ready(self) -> bool:
        """The proxy answers, its router is loaded (the probe is in), and, with health-check routing, the
        first round of background checks has given every deployment a verdict: until then LiteLLM routes
        to all of them, and a first check that fails (a cold proxy can time out) would show as a fault."""
        try:
            deployments = self._deployments()
        except StackError:
            return False
        if self.effective.health_check is not None and self.effective.litellm.health_check_routing:
            return bool(deployments) and all(d.get("health_check") is not None for d in deployments)
        return bool(deployments)

    def host_health(self) -> dict[str, HostHealth]:
        """A deployment is unhealthy while it is in cooldown (the router skips it) or its last background
        health check failed (with health-check routing, also skipped; see traps for the exception)."""
        return {urlsplit(str(d.get("api_base"))).netloc: host_health_of(d) for d in self._deployments()}

    def health_rounds(self) -> list[dict[str, Any]] | None:
        """Every background health-check round the proxy ran (its checks' start, its verdicts' write, Unix
        times stamped by the proxy); None without background checks. Raises StackError if it cannot say."""
        if self.effective.health_check is None:
            return None
        error: Exception | None = None
        for _ in range(ROUNDS_TRIES):  # once, at the end of the load: a busy proxy gets a few chances
            try:
                response = self._http.get(f"{self.url}{ROUNDS_PATH}", timeout=ROUNDS_TIMEOUT)
                response.raise_for_status()
                return [r for r in response.json()["rounds"] if isinstance(r, dict)]
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                error = exc
        raise StackError(f"the LiteLLM proxy's {ROUNDS_PATH} at {self.url} did not answer: {error}")

    # -- its own stamps of each health change (harness/gateway_events.py) ---------------
    @staticmethod
    def health_event_logs(run_dir: Path) -> list[tuple[Path, bool]]:
        """The probe's log of each change of a deployment's health (JSON lines beside the config, where the probe
        is imported from), stamped with the proxy's own times: a cooldown's start and end, a verdict's write."""
        return [(run_dir / HEALTH_EVENT_LOG, False)]

    @staticmethod
    def parse_health_event(record: dict[str, Any]) -> list[dict[str, Any]]:
        """One line of the probe's log: ``{"ts", "id", "address", "healthy", "what"}`` (litellm_probe.py)."""
        ts, address, healthy = record.get("ts"), record.get("address"), record.get("healthy")
        if not isinstance(ts, int | float) or isinstance(ts, bool) or not isinstance(address, str) or \
                not address or not isinstance(healthy, bool):
            return []
        return [{"ts": float(ts), "address": address, "healthy": healthy, "what": str(record.get("what", ""))}]

    def version(self) -> str:
        try:
            return metadata.version("litellm")
        except metadata.PackageNotFoundError:
            return "unknown"

    # -- what the configuration means ------------------------------------------------
    @staticmethod
    def settings_issues(scenario: Scenario) -> list[SettingIssue]:
        return settings_issues(scenario)


def _params(upstream: UpstreamAddress, model: str) -> dict[str, Any]:
    """One deployment's litellm_params: an ``openai/`` model whose api_base ends in /v1 (LiteLLM calls
    {api_base}/chat/completions), or, for an anthropic pool, an ``anthropic/`` model whose api_base has no
    /v1 (LiteLLM calls {api_base}/v1/messages), as harness/own_config/litellm.py binds a user's groups. The fake
    answers with the model it was asked for: a fallback group's answers name its pool."""
    anthropic = upstream.kind == "anthropic"
    return {"model": f"{'anthropic' if anthropic else 'openai'}/{model}",
            "api_base": f"http://{upstream.host}:{upstream.port}" + ("" if anthropic else "/v1"),
            "api_key": "sk-chaosgate-fake", "max_retries": 0}


def _deployment_id(upstream: UpstreamAddress) -> str:
    return upstream.replica.replace("[", "-").replace("]", "")


def host_health_of(deployment: dict[str, Any]) -> HostHealth:
    """One entry of the probe's list as the seam's HostHealth."""
    flags = []
    if deployment.get("cooldown"):
        status = deployment.get("cooldown_status")
        flags.append(f"cooldown({status})" if status not in (None, "None", "") else "cooldown")
    if deployment.get("health_check") == "unhealthy":
        flags.append("health_check_failed")
    detail = f"health check: {deployment['health_error']}" if flags and deployment.get("health_error") else ""
    return HostHealth(not flags, "/".join(flags) or "healthy", detail)


def settings_issues(scenario: Scenario) -> list[SettingIssue]:
    """What LiteLLM cannot honour (errors, for fields the file sets) or what does not apply (notes)."""
    g = scenario.gateway
    gw = ("gateway",)
    issues: list[SettingIssue] = []
    if (hc := g.health_check) is not None:
        hcp = (*gw, "health_check")
        if _whole_seconds(hc.interval) is None:
            issues.append(SettingIssue((*hcp, "interval"), f"LiteLLM's health_check_interval is a whole number of "
                                       f"seconds (>= 1; anything else silently turns its checks off); got {hc.interval:g}s"))
        if getattr(hc, "mcp", None) is not None:
            issues.append(SettingIssue((*hcp, "mcp"), "LiteLLM proxies the OpenAI API only; it has no MCP health check"))
        issues += [
            SettingIssue((*hcp, "path"), "LiteLLM's health check is a chat completion (max_tokens 1) through the "
                         "model API of each deployment, not a GET of a path: a replica whose /health fails but "
                         "whose completions work stays healthy", error=False),
            SettingIssue((*hcp, "unhealthy_threshold"), "one failed LiteLLM health check marks a deployment "
                         "unhealthy (it behaves as unhealthy_threshold: 1)", error=False),
            SettingIssue((*hcp, "healthy_threshold"), "one passed LiteLLM health check readmits a deployment "
                         "(it behaves as healthy_threshold: 1)", error=False),
            SettingIssue((*hcp, "expected_statuses"), "a LiteLLM health check passes when the completion "
                         "succeeds (any 2xx)", error=False),
            SettingIssue((*hcp, "no_traffic_interval"), "LiteLLM checks every health_check_interval whether or "
                         "not the deployment carried traffic", error=False),
        ]
    if (od := g.outlier_detection) is not None:
        odp = (*gw, "outlier_detection")
        issues += [
            SettingIssue((*odp, "consecutive_5xx"), f"LiteLLM counts failed calls within cooldown_time, not in a row "
                         f"(successes do not reset the count): allowed_fails {max(0, (od.consecutive_5xx or 1) - 1)} "
                         "cools a deployment down on the next failure", error=False),
            SettingIssue((*odp, "interval"), "LiteLLM cools a deployment down at the failure that crosses "
                         "allowed_fails; there is no review interval", error=False),
            SettingIssue((*odp, "max_ejection_percent"), "LiteLLM has no cap on how many deployments cool down at "
                         "once (it behaves as 100)", error=False),
        ]
        if od.consecutive_gateway_failure is not None:
            issues.append(SettingIssue((*odp, "consecutive_gateway_failure"), "LiteLLM does not count 502/503/504 "
                                       "apart from other failures; only consecutive_5xx maps (allowed_fails)",
                                       error=not explicitly_set(g, "outlier_detection", "consecutive_5xx")))
    issues.append(SettingIssue((*gw, "panic_threshold"), "LiteLLM has no panic threshold; when its health checks "
                               "fail every deployment it routes to all of them anyway (cooldowns are never "
                               "bypassed)", error=False))
    issues.append(SettingIssue((*gw, "connect_timeout"), "LiteLLM has one time limit per call "
                               "(router timeout = request_timeout), no separate connect timeout", error=False))
    if (retries := g.retries) is not None:
        issues.append(SettingIssue((*gw, "retries", "retry_on"), "LiteLLM retries every failure it deems "
                                   "retryable (connection errors, timeouts, 408/409/429/5xx), on any deployment",
                                   error=False))
        if retries.per_try_timeout is not None:
            issues.append(SettingIssue((*gw, "retries", "per_try_timeout"), "LiteLLM has no per-try time "
                                       "limit; request_timeout limits each call"))
        if retries.retriable_status_codes:
            issues.append(SettingIssue((*gw, "retries", "retriable_status_codes"), "LiteLLM retries a 429 "
                                       "(rate_limit_exceeded and insufficient_quota alike) without being told; "
                                       "its retry_policy is per error class, not per status", error=False))
    anthropic_persona = any(w > 0 for persona, w in scenario.load.mix.items() if persona.startswith("anthropic"))
    for i, pool in enumerate(scenario.upstreams):
        if pool.kind == "mcp" or (pool.kind == "anthropic" and anthropic_persona
                                  and pool.name == scenario.anthropic_load_pool):
            issues.append(SettingIssue(("upstreams", i, "kind"), f"the litellm adapter proxies the OpenAI API only "
                                       f"(the load's chat completions; an anthropic pool is a model group other "
                                       f"groups fall back to); {pool.name!r} is {pool.kind!r}"
                                       + (" and the load's anthropic persona talks to it" if pool.kind == "anthropic"
                                          else "")))
        if pool.name == MODEL_NAME and pool.name != scenario.load_pool:
            issues.append(SettingIssue(("upstreams", i, "name"), f"the litellm adapter names the load's model group "
                                       f"{MODEL_NAME!r} and every other pool's group after the pool: rename this pool"))
        if pool.tls is not None:
            issues.append(SettingIssue(("upstreams", i, "tls"), "the litellm adapter does not speak TLS to "
                                       "replicas yet"))
        if getattr(pool, "dns", None) is not None:
            issues.append(SettingIssue(("upstreams", i, "dns"), "the litellm adapter reaches replicas by "
                                       "address only (no DNS resolution)"))
    return issues

