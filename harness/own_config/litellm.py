"""The user's own LiteLLM proxy config.yaml, read and rewritten (docs/own-config/litellm.md).

The reading direction of harness/gateways/litellm.py: where the adapter renders a scenario's ``gateway``
block into LiteLLM's knobs, this reads those knobs back into a ``Gateway`` block, per model group
(LiteLLM 1.108's proxy and router, as read in its source and measured in docs/gateways.md):

* a **block** is a model group: the ``model_list`` entries of one ``model_name``, in file order; each
  entry is one deployment, whose endpoint is its ``litellm_params.api_base`` host:port (an entry without
  one goes to its provider's public API: off this machine);
* ``general_settings.background_health_checks`` + ``health_check_interval`` (LiteLLM's default: 300 s)
  → ``health_check`` (interval; ``model_info.health_check_timeout``, default 60 s → timeout; one failed
  check marks a deployment unhealthy and one passed check readmits it), and ``enable_health_check_routing``
  (default false: the checks only report) and ``health_check_staleness_threshold`` → ``litellm``;
* ``router_settings.allowed_fails`` + ``cooldown_time`` (default 5 s) → ``outlier_detection``
  (consecutive_5xx = allowed_fails + 1, base_ejection_time = cooldown_time); ``disable_cooldowns``, or a
  group of one deployment that has no fallback (LiteLLM never cools such a deployment down), → none;
* ``num_retries`` (router_settings, else litellm_settings; LiteLLM's default: 2) → ``retries``;
  ``router_settings.timeout`` (else ``litellm_settings.request_timeout``, else LiteLLM's 6000 s; a
  deployment's own ``litellm_params.timeout`` wins) → ``request_timeout``.

What changes when a deployment is taken out or put back but that the promise model does not express is
``Unmodelled`` (the promise is Unknown, naming it): cooldowns without a router-level ``allowed_fails``
(LiteLLM then cools down by the share of failed calls in the current minute), ``allowed_fails`` equal to
LiteLLM's own default 3 (the router then takes it as unset), ``allowed_fails_policy``, per-deployment
``allowed_fails`` / ``allowed_fails_policy`` / ``cooldown_time``, a ``routing_strategy`` other than
simple-shuffle, deployments with unequal ``weight`` or an ``order``, SDK retries (``max_retries``) on one
deployment, ``health_check_concurrency``, a ``health_check_interval`` that is not whole seconds, check
timeouts that differ between deployments (a round lasts as long as its slowest check), and health checks
turned off for some of a group's deployments. ``fallbacks``, ``retry_policy`` and ``num_retries`` run as
written: they change what a client gets, not when the router takes a deployment of the group out (every
failed call counts towards its cooldown, retried or not: harness/promise/litellm.py).

Every address the file sends data to outside its model groups is listed as outbound: logging and
callback integrations (``success_callback: [langfuse]``, ...), ``alerting``, the database, Redis.
A callback chaosgate does not know, or an ``os.environ/NAME`` reference it needs and cannot resolve, is
refused with its line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness.errors import Problem, ScenarioError
from harness.own_config.base import Block, Endpoint, NativeConfig, RewriteJob, Rewritten, Source, Unmodelled, refuse
from harness.yaml_source import YamlDocument, load_yaml

KIND = "litellm"
ENV_PREFIX = "os.environ/"
FAKE_KEY = "sk-chaosgate-fake"  # the fakes check no key; a key the proxy's environment lacks is given this one
# LiteLLM 1.108's own defaults (litellm/constants.py, litellm/__init__.py, router.py, proxy_server.py)
DEFAULT_HEALTH_CHECK_INTERVAL = 300
DEFAULT_HEALTH_CHECK_TIMEOUT = 60.0
DEFAULT_COOLDOWN_TIME = 5.0
DEFAULT_ALLOWED_FAILS = 3        # litellm.allowed_fails: a router whose allowed_fails equals it counts as unset
DEFAULT_NUM_RETRIES = 2          # openai.DEFAULT_MAX_RETRIES, the router's when neither section sets num_retries
DEFAULT_REQUEST_TIMEOUT = 6000.0  # litellm.request_timeout
ROUTING_STRATEGY = "simple-shuffle"  # LiteLLM's default, and the adapter's: picked at random

# The public API each provider prefix sends a deployment without api_base to (host, port).
PROVIDER_HOSTS: dict[str, tuple[str, int]] = {
    "openai": ("api.openai.com", 443), "text-completion-openai": ("api.openai.com", 443),
    "anthropic": ("api.anthropic.com", 443), "gemini": ("generativelanguage.googleapis.com", 443),
    "vertex_ai": ("aiplatform.googleapis.com", 443), "mistral": ("api.mistral.ai", 443),
    "groq": ("api.groq.com", 443), "cohere": ("api.cohere.ai", 443), "together_ai": ("api.together.xyz", 443),
    "deepseek": ("api.deepseek.com", 443), "xai": ("api.x.ai", 443), "fireworks_ai": ("api.fireworks.ai", 443),
    "perplexity": ("api.perplexity.ai", 443), "openrouter": ("openrouter.ai", 443),
    "bedrock": ("bedrock-runtime.amazonaws.com", 443), "huggingface": ("api-inference.huggingface.co", 443),
    "ollama": ("localhost", 11434), "ollama_chat": ("localhost", 11434),
}
# Logging and callback integrations that send every call's data off the machine: the environment variable
# that names their address (if any) and their default host.
CALLBACK_HOSTS: dict[str, tuple[str | None, str]] = {
    "langfuse": ("LANGFUSE_HOST", "cloud.langfuse.com"), "langfuse_otel": ("LANGFUSE_HOST", "cloud.langfuse.com"),
    "langsmith": ("LANGSMITH_BASE_URL", "api.smith.langchain.com"),
    "datadog": (None, "http-intake.logs.datadoghq.com"),
    "datadog_llm_observability": (None, "api.datadoghq.com"), "sentry": (None, "sentry.io"),
    "lunary": ("LUNARY_API_URL", "api.lunary.ai"), "helicone": (None, "api.helicone.ai"),
    "athina": (None, "log.athina.ai"), "braintrust": (None, "api.braintrust.dev"),
    "wandb": (None, "api.wandb.ai"), "mlflow": ("MLFLOW_TRACKING_URI", "mlflow tracking server"),
    "arize": (None, "otlp.arize.com"), "arize_phoenix": ("PHOENIX_COLLECTOR_ENDPOINT", "app.phoenix.arize.com"),
    "opik": (None, "www.comet.com"), "s3": (None, "s3.amazonaws.com"), "s3_v2": (None, "s3.amazonaws.com"),
    "gcs_bucket": (None, "storage.googleapis.com"), "gcs_pubsub": (None, "pubsub.googleapis.com"),
    "azure_storage": (None, "blob.core.windows.net"), "dynamodb": (None, "dynamodb.amazonaws.com"),
    "otel": ("OTEL_EXPORTER_OTLP_ENDPOINT", "otel collector"), "traceloop": (None, "api.traceloop.com"),
    "openmeter": ("OPENMETER_API_ENDPOINT", "openmeter.cloud"), "logfire": (None, "logfire-api.pydantic.dev"),
    "supabase": ("SUPABASE_URL", "supabase"), "generic_api": ("GENERIC_LOGGER_ENDPOINT", "generic logger"),
    "humanloop": (None, "api.humanloop.com"), "galileo": ("GALILEO_BASE_URL", "galileo"),
    "literalai": (None, "cloud.getliteral.ai"), "agentops": (None, "api.agentops.ai"),
    "promptlayer": (None, "api.promptlayer.com"), "greenscale": (None, "api.greenscale.ai"),
    "posthog": (None, "app.posthog.com"), "slack": ("SLACK_WEBHOOK_URL", "hooks.slack.com"),
    "pagerduty": (None, "events.pagerduty.com"), "email": (None, "smtp server"), "webhook": (None, "webhook"),
}
# Providers whose calls are OpenAI's chat completions at {api_base}/chat/completions: what a pool's replicas (the fake
# model servers, harness/gateways/litellm.py) answer. A bound deployment of another provider is refused.
ANTHROPIC = "anthropic"  # the provider whose calls are Anthropic's Messages API at {api_base}/v1/messages
OPENAI_API_PROVIDERS = frozenset({
    "openai", "hosted_vllm", "custom_openai", "lm_studio", "llamafile", "groq", "deepseek", "together_ai",
    "fireworks_ai", "mistral", "xai", "openrouter", "nvidia_nim", "perplexity", "deepinfra"})
LOCAL_CALLBACKS = frozenset({"prometheus", "log_to_file"})  # integrations that keep their data on the machine
CALLBACK_KEYS = ("callbacks", "success_callback", "failure_callback", "service_callback", "input_callback")
_MODULE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)+$")  # a custom callback: module.instance, beside the config


def provider_of(model: str, custom_llm_provider: Any = None) -> str:
    """The provider LiteLLM calls for a deployment: its custom_llm_provider, else the model's prefix (openai/...)."""
    return str(custom_llm_provider or (model.split("/", 1)[0] if "/" in model else "openai"))


@dataclass(frozen=True)
class _Deployment:
    index: int
    group: str
    entry: Mapping[str, Any]


class LitellmReader:
    """LiteLLM proxy config.yaml: model groups as blocks (harness/own_config/base.py NativeReader)."""

    kind: str = KIND
    file_patterns: tuple[str, ...] = ("litellm*.yaml", "litellm*.yml")

    def read(self, path: Path, text: str) -> NativeConfig:
        return _Reading(path, text).config()

    def rewrite(self, config: NativeConfig, job: RewriteJob) -> Rewritten:
        return rewrite(config, job)


class _Reading:
    """One read of one file: its YAML with every node's line, and the problems found so far."""

    def __init__(self, path: Path, text: str) -> None:
        self.path, self.text, self.file = path, text, str(path)
        if not text.strip():
            raise refuse(self.file, 1, "", "the file is empty; expected a LiteLLM proxy config with a model_list")
        self.doc: YamlDocument = load_yaml(text, self.file)
        if not isinstance(self.doc.data, dict):
            raise refuse(self.file, 1, "", "expected a mapping with model_list (a LiteLLM proxy config.yaml)")
        self.data: dict[str, Any] = self.doc.data
        self.problems: list[Problem] = []

    # -- where things are ------------------------------------------------------------
    def line(self, path: tuple[str | int, ...]) -> int:
        return self.doc.locate(path)[0] or 1

    def source(self, path: tuple[str | int, ...]) -> Source:
        return Source(self.file, self.line(path), _dotted(path))

    def section(self, name: str) -> dict[str, Any]:
        value = self.data.get(name)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problems.append(Problem(self.file, self.line((name,)), None, name, "expected a mapping"))
            return {}
        return value

    def setting(self, section: str, key: str) -> tuple[Any, Source] | None:
        """``section.key`` with its place, an ``os.environ/NAME`` reference resolved; None when unset."""
        found = self.section(section)
        if key not in found or found[key] is None:
            return None
        path = (section, key)
        return self.resolve(found[key], path), self.source(path)

    def resolve(self, value: Any, path: tuple[str | int, ...]) -> Any:
        """A value as LiteLLM reads it: ``os.environ/NAME`` is the variable's value (refused when unset)."""
        if isinstance(value, str) and value.startswith(ENV_PREFIX):
            name = value[len(ENV_PREFIX):]
            if name in os.environ:
                return os.environ[name]
            self.problems.append(Problem(self.file, self.line(path), None, _dotted(path),
                                         f"is {value}, and {name} is not set here: chaosgate cannot tell what "
                                         f"LiteLLM would use; set {name}, or write the value in the file"))
            return None
        return value

    def number(self, section: str, key: str, *, whole: bool = False) -> tuple[float, Source] | None:
        found = self.setting(section, key)
        if found is None or found[0] is None:
            return None
        value, source = found
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.problems.append(Problem(self.file, source.line, None, source.setting,
                                         f"expected a number{' of seconds' if key != 'allowed_fails' else ''}, "
                                         f"got {value!r}"))
            return None
        if number < 0 or (whole and not number.is_integer()):
            self.problems.append(Problem(self.file, source.line, None, source.setting,
                                         f"expected a {'whole ' if whole else ''}number >= 0, got {value!r}"))
            return None
        return number, source

    def flag(self, section: str, key: str) -> tuple[bool, Source] | None:
        found = self.setting(section, key)
        if found is None or found[0] is None:
            return None
        value, source = found
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            self.problems.append(Problem(self.file, source.line, None, source.setting,
                                         f"expected true or false, got {value!r}"))
            return None
        return value, source

    # -- the file --------------------------------------------------------------------
    def deployments(self) -> list[_Deployment]:
        entries = self.data.get("model_list")
        if not isinstance(entries, list) or not entries:
            raise refuse(self.file, self.line(("model_list",)), "model_list",
                         "expected a model_list with at least one deployment (model_name, litellm_params)")
        found = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                self.problems.append(Problem(self.file, self.line(("model_list", i)), None, f"model_list[{i}]",
                                             "expected a mapping with model_name and litellm_params"))
                continue
            name, params = entry.get("model_name"), entry.get("litellm_params")
            if not isinstance(name, str) or not name:
                self.problems.append(Problem(self.file, self.line(("model_list", i)), None,
                                             f"model_list[{i}].model_name", "expected the model group's name"))
                continue
            if not isinstance(params, dict):
                self.problems.append(Problem(self.file, self.line(("model_list", i)), None,
                                             f"model_list[{i}].litellm_params",
                                             "expected a mapping with model (and api_base)"))
                continue
            if entry.get("model_info") is not None and not isinstance(entry["model_info"], dict):
                self.problems.append(Problem(self.file, self.line(("model_list", i, "model_info")), None,
                                             f"model_list[{i}].model_info", "expected a mapping"))
                continue
            found.append(_Deployment(i, name, entry))
        return found

    def endpoint(self, d: _Deployment) -> Endpoint | None:
        params = d.entry["litellm_params"]
        if params.get("api_base") is not None:
            path = ("model_list", d.index, "litellm_params", "api_base")
            base = self.resolve(params["api_base"], path)
            if base is None:
                return None
            parts = urlsplit(str(base))
            try:
                port = parts.port
            except ValueError:
                port = None
                parts = parts._replace(netloc="")
            if parts.scheme not in ("http", "https") or not parts.hostname:
                self.problems.append(Problem(self.file, self.line(path), None, _dotted(path),
                                             f"expected a URL such as http://HOST:PORT/v1, got {base!r}"))
                return None
            return Endpoint(parts.hostname, port or (443 if parts.scheme == "https" else 80), self.source(path))
        model = str(self.resolve(params.get("model"), ("model_list", d.index, "litellm_params", "model")) or "")
        provider = model.split("/", 1)[0] if "/" in model else "openai"
        host, port = PROVIDER_HOSTS.get(provider, (provider, 443))
        return Endpoint(host, port, Source(self.file, self.line(("model_list", d.index, "litellm_params")),
                                           f"model_list[{d.index}].litellm_params (no api_base: {provider}'s "
                                           f"public API)"))

    def outbound(self) -> list[Endpoint]:
        """Where the file sends data besides its deployments: callbacks, alerting, the database, Redis."""
        found: list[Endpoint] = []
        litellm_settings = self.section("litellm_settings")
        for key in CALLBACK_KEYS:
            names = litellm_settings.get(key)
            if names is None:
                continue
            for j, name in enumerate(names if isinstance(names, list) else [names]):
                path: tuple[str | int, ...] = ("litellm_settings", key, j) if isinstance(names, list) else \
                    ("litellm_settings", key)
                found += self.callback(str(name), path)
        general = self.section("general_settings")
        alerting = general.get("alerting")
        for j, name in enumerate(alerting if isinstance(alerting, list) else []):
            found += self.callback(str(name), ("general_settings", "alerting", j))
        for key in ("database_url",):
            if (url := self.setting("general_settings", key)) is not None and url[0]:
                found += self.url_endpoint(str(url[0]), url[1], 5432)
        router = self.section("router_settings")
        if router.get("redis_url"):
            if (url := self.setting("router_settings", "redis_url")) is not None and url[0]:
                found += self.url_endpoint(str(url[0]), url[1], 6379)
        elif router.get("redis_host"):
            host = self.setting("router_settings", "redis_host")
            port = self.setting("router_settings", "redis_port")
            if host is not None and host[0]:
                found.append(Endpoint(str(host[0]), int(port[0]) if port and port[0] else 6379, host[1]))
        cache = litellm_settings.get("cache_params")
        if litellm_settings.get("cache") and isinstance(cache, dict) and cache.get("type", "redis") == "redis":
            path = ("litellm_settings", "cache_params", "host")
            cache_host = self.resolve(cache.get("host"), path) or "localhost"
            cache_port = self.resolve(cache.get("port"), ("litellm_settings", "cache_params", "port")) or 6379
            found.append(Endpoint(str(cache_host), int(cache_port), self.source(path if "host" in cache else
                                                                     ("litellm_settings", "cache_params"))))
        return found

    def url_endpoint(self, url: str, source: Source, port: int) -> list[Endpoint]:
        parts = urlsplit(url)
        try:
            return [Endpoint(parts.hostname or "", parts.port or port, source)] if parts.hostname else []
        except ValueError:
            return [Endpoint(parts.hostname or "", port, source)]

    def callback(self, name: str, path: tuple[str | int, ...]) -> list[Endpoint]:
        """A logging integration's address off the machine (none for local ones and the user's own modules)."""
        if name in LOCAL_CALLBACKS or _MODULE.match(name):
            return []
        if name not in CALLBACK_HOSTS:
            self.problems.append(Problem(self.file, self.line(path), None, _dotted(path),
                                         f"LiteLLM's {name!r} integration: chaosgate does not know where it sends "
                                         "data, so it cannot tell that it stays on this machine; remove it from "
                                         "the copy you test"))
            return []
        variable, host = CALLBACK_HOSTS[name]
        source = Source(self.file, self.line(path), f"{_dotted(path)} ({name}: sends every call's data out)")
        if variable is not None and os.environ.get(variable):
            parts = urlsplit(os.environ[variable] if "//" in os.environ[variable] else f"//{os.environ[variable]}")
            if parts.hostname:
                return [Endpoint(parts.hostname, parts.port or 443, source)]
        return [Endpoint(host, 443, source)]

    # -- the settings of each model group -------------------------------------------------
    def config(self) -> NativeConfig:
        deployments = self.deployments()
        groups: dict[str, list[_Deployment]] = {}
        for d in deployments:
            groups.setdefault(d.group, []).append(d)
        endpoints = {d.index: self.endpoint(d) for d in deployments}
        shared = self.shared()
        blocks = {name: self.block(name, members, deployments, endpoints, shared) for name, members in groups.items()}
        outbound = self.outbound()
        if self.problems:  # each once (a section that is not a mapping is met by every setting in it)
            raise ScenarioError(list({str(p): p for p in self.problems}.values()))
        return NativeConfig(KIND, self.path, self.text, blocks, tuple(outbound), "model group")

    def shared(self) -> _Shared:
        """The settings every model group shares (general, router and litellm settings)."""
        from harness.scenario import HealthCheck

        where: dict[tuple[str | int, ...], Source] = {}
        unmodelled: list[Unmodelled] = []
        health: HealthCheck | None = None
        checks = self.flag("general_settings", "background_health_checks")
        if checks is not None and checks[0]:
            where[("gateway", "health_check")] = checks[1]
            interval = self.number("general_settings", "health_check_interval")
            seconds = interval[0] if interval is not None else float(DEFAULT_HEALTH_CHECK_INTERVAL)
            if interval is not None:
                where[("gateway", "health_check", "interval")] = interval[1]
                if seconds < 1 or not seconds.is_integer():
                    unmodelled.append(Unmodelled(interval[1], f"health_check_interval {seconds:g} is not a whole "
                                                 "number of seconds >= 1, which LiteLLM's background loop does not "
                                                 "run as an interval"))
            health = HealthCheck(interval=max(seconds, 1.0), timeout=DEFAULT_HEALTH_CHECK_TIMEOUT,
                                 unhealthy_threshold=1, healthy_threshold=1)
            if (concurrency := self.setting("general_settings", "health_check_concurrency")) is not None:
                unmodelled.append(Unmodelled(concurrency[1], f"health_check_concurrency {concurrency[0]}: a round "
                                             "checks deployments in batches, so it lasts several check timeouts"))
        routing = self.flag("general_settings", "enable_health_check_routing")
        if routing is not None:
            where[("gateway", "litellm", "health_check_routing")] = routing[1]
        elif "general_settings" in self.data:  # where the missing setting belongs
            where[("gateway", "litellm")] = self.source(("general_settings",))
        staleness = self.number("general_settings", "health_check_staleness_threshold", whole=True)
        if staleness is not None:
            where[("gateway", "litellm", "health_check_staleness")] = staleness[1]
        groups_filter = self.setting("general_settings", "background_health_check_model_groups")

        cooldowns_off = self.flag("router_settings", "disable_cooldowns")
        allowed = self.number("router_settings", "allowed_fails", whole=True)
        module_allowed = self.number("litellm_settings", "allowed_fails", whole=True)
        cooldown = self.number("router_settings", "cooldown_time")
        policy = self.setting("router_settings", "allowed_fails_policy")
        strategy = self.setting("router_settings", "routing_strategy")
        retries = self.number("router_settings", "num_retries", whole=True) or \
            self.number("litellm_settings", "num_retries", whole=True)
        timeout = self.number("router_settings", "timeout") or self.number("litellm_settings", "request_timeout")
        fallbacks: set[str] = set()
        for section in ("router_settings", "litellm_settings"):
            for entry in self.section(section).get("fallbacks") or []:
                if isinstance(entry, dict):
                    fallbacks |= {str(k) for k, v in entry.items() if v}
        return _Shared(where, unmodelled, health, routing, staleness, groups_filter, cooldowns_off, allowed,
                       module_allowed, cooldown, policy, strategy, retries, timeout, fallbacks)

    def block(self, name: str, members: list[_Deployment], everyone: list[_Deployment],
              endpoints: Mapping[int, Endpoint | None], shared: _Shared) -> Block:
        from harness.gateways.litellm import LitellmOptions
        from harness.scenario import Gateway, OutlierDetection, Retries

        first = members[0]
        source = Source(self.file, self.line(("model_list", first.index, "model_name")),
                        f"model_list[{first.index}] (model_name: {name})")
        where = dict(shared.where)
        unmodelled = list(shared.unmodelled)

        def info(d: _Deployment, key: str) -> Any:
            return (d.entry.get("model_info") or {}).get(key)

        def params(d: _Deployment, key: str) -> Any:
            return d.entry["litellm_params"].get(key)

        def at(d: _Deployment, part: str, key: str) -> Source:
            return self.source(("model_list", d.index, part, key))

        # -- background health checks
        health = shared.health
        if health is not None:
            off = [d for d in members if info(d, "disable_background_health_check")]
            scoped = shared.groups_filter
            if scoped is not None and isinstance(scoped[0], list) and name not in [str(g) for g in scoped[0]]:
                where[("gateway", "health_check")] = scoped[1]
                health = None
            elif off and len(off) == len(members):
                where[("gateway", "health_check")] = at(off[0], "model_info", "disable_background_health_check")
                health = None
            elif off:
                unmodelled.append(Unmodelled(at(off[0], "model_info", "disable_background_health_check"),
                                             f"background health checks are off for {len(off)} of the "
                                             f"{len(members)} deployments of {name!r}"))
        if health is not None:
            timeouts = {d.index: info(d, "health_check_timeout") for d in everyone}
            mine = {timeouts[d.index] for d in members}
            used = set(timeouts.values())
            value = next(iter(mine))
            if len(used) > 1:
                d = next(d for d in members if timeouts[d.index] is not None) if value is not None else members[0]
                unmodelled.append(Unmodelled(at(d, "model_info", "health_check_timeout") if value is not None
                                             else source,
                                             "health_check_timeout differs between the file's deployments "
                                             f"({', '.join(sorted(f'{t:g}s' if t is not None else 'unset (60s)' for t in used))}): "
                                             "a round checks them all at once and ends with its slowest check"))
            elif value is not None:
                try:
                    health = health.model_copy(update={"timeout": float(value)})
                except (TypeError, ValueError):
                    self.problems.append(Problem(self.file, at(first, "model_info", "health_check_timeout").line, None,
                                                 "health_check_timeout", f"expected seconds, got {value!r}"))
                where[("gateway", "health_check", "timeout")] = at(first, "model_info", "health_check_timeout")
        # -- cooldowns
        outlier: OutlierDetection | None = None
        if shared.cooldowns_off is not None and shared.cooldowns_off[0]:
            where[("gateway", "outlier_detection")] = shared.cooldowns_off[1]
        else:
            cooldown = shared.cooldown[0] if shared.cooldown is not None else DEFAULT_COOLDOWN_TIME
            default_fails = shared.module_allowed[0] if shared.module_allowed is not None else DEFAULT_ALLOWED_FAILS
            per_deployment = [(d, key, part) for d in members for part, key in
                              (("model_info", "allowed_fails"), ("model_info", "allowed_fails_policy"),
                               ("litellm_params", "cooldown_time"))
                              if (d.entry.get(part) or {}).get(key) is not None]
            lone = len(members) == 1 and name not in shared.fallbacks
            if shared.policy is not None:
                unmodelled.append(Unmodelled(shared.policy[1], "allowed_fails_policy: a deployment cools down after "
                                             "a number of failures that depends on the error's class"))
            for d, key, part in per_deployment[:1]:
                unmodelled.append(Unmodelled(at(d, part, key), f"a deployment's own {key}: the router counts that "
                                             "deployment's failures against it instead of the router's settings"))
            if shared.allowed is None or shared.allowed[0] == default_fails:
                if not lone:
                    place = shared.allowed[1] if shared.allowed is not None else \
                        (shared.module_allowed[1] if shared.module_allowed is not None else
                         self.source(("router_settings",)) if "router_settings" in self.data else source)
                    unmodelled.append(Unmodelled(place, (
                        f"allowed_fails {shared.allowed[0]:g} equals LiteLLM's default ({default_fails:g}), so its "
                        "router takes it as unset" if shared.allowed is not None else
                        "no allowed_fails in router_settings") + ": LiteLLM then cools a deployment down by its share "
                        "of failed calls in the current minute (over 50% of at least 5 calls; at once on a 429), "
                        "which the promise model does not express; set router_settings.allowed_fails"))
            elif not lone:
                assert shared.allowed is not None
                outlier = OutlierDetection(consecutive_5xx=int(shared.allowed[0]) + 1, base_ejection_time=cooldown,
                                           interval=cooldown, max_ejection_percent=100)
                where[("gateway", "outlier_detection")] = shared.allowed[1]
                where[("gateway", "outlier_detection", "consecutive_5xx")] = shared.allowed[1]
                if shared.cooldown is not None:
                    where[("gateway", "outlier_detection", "base_ejection_time")] = shared.cooldown[1]
            if lone:  # LiteLLM never cools down the only deployment of a group that has no fallback
                where[("gateway", "outlier_detection")] = source
        # -- how the router picks a deployment
        if shared.strategy is not None and shared.strategy[0] not in (None, ROUTING_STRATEGY):
            unmodelled.append(Unmodelled(shared.strategy[1], f"routing_strategy {shared.strategy[0]}: the promise "
                                         "model counts on deployments picked at random (simple-shuffle)"))
        weights = {params(d, "weight") for d in members}
        if len(weights) > 1:
            d = next(d for d in members if params(d, "weight") is not None)
            unmodelled.append(Unmodelled(at(d, "litellm_params", "weight"), "the deployments' weights differ: the "
                                         "promise model counts on each being picked as often"))
        for d in members:
            if params(d, "order") is not None:
                unmodelled.append(Unmodelled(at(d, "litellm_params", "order"), "order: the router sends traffic to "
                                             "the lowest order's deployments first"))
                break
        for d in members:
            if (params(d, "max_retries") or 0) not in (0, "0"):
                unmodelled.append(Unmodelled(at(d, "litellm_params", "max_retries"), "max_retries: the SDK retries "
                                             "a failed call on the same deployment before the router counts it"))
                break
        # -- retries and the time limit
        retries = Retries(num_retries=min(int(shared.retries[0]), 10)) if shared.retries is not None else \
            Retries(num_retries=DEFAULT_NUM_RETRIES)
        if shared.retries is not None:
            where[("gateway", "retries")] = shared.retries[1]
            where[("gateway", "retries", "num_retries")] = shared.retries[1]
        request_timeout = shared.timeout[0] if shared.timeout is not None else DEFAULT_REQUEST_TIMEOUT
        if shared.timeout is not None:
            where[("gateway", "request_timeout")] = shared.timeout[1]
        own_timeouts = {params(d, "timeout") for d in members}
        if own_timeouts != {None}:
            d = next(d for d in members if params(d, "timeout") is not None)
            try:
                values = {float(t) for t in own_timeouts if t is not None}
            except (TypeError, ValueError):
                values = set()
            if len(own_timeouts) == 1 and len(values) == 1:
                request_timeout = next(iter(values))
                where[("gateway", "request_timeout")] = at(d, "litellm_params", "timeout")
            else:
                unmodelled.append(Unmodelled(at(d, "litellm_params", "timeout"), "the deployments' time limits "
                                             "(litellm_params.timeout) differ"))
        cannot_bind = []
        speaks: set[str] = set()
        for d in members:
            model = str(params(d, "model") or "")
            provider = provider_of(model, params(d, "custom_llm_provider"))
            if provider not in OPENAI_API_PROVIDERS and provider != ANTHROPIC:
                cannot_bind.append(Unmodelled(at(d, "litellm_params", "model"), (
                    f"model {model}: LiteLLM calls the {provider} provider's own API, and a pool's replicas answer "
                    f"OpenAI's (chat completions) or Anthropic's (messages); bind a model group whose deployments use "
                    f"an OpenAI-compatible provider (openai/, hosted_vllm/, ...) or anthropic/")))
                break
            speaks.add(ANTHROPIC if provider == ANTHROPIC else "openai")
            if len(speaks) > 1:
                cannot_bind.append(Unmodelled(at(d, "litellm_params", "model"), (
                    f"model {model}: the group mixes Anthropic's API with OpenAI's, and a pool's replicas answer "
                    f"one of them; give each API a model group of its own")))
                break
        options = LitellmOptions(
            health_check_routing=bool(shared.routing[0]) if shared.routing is not None else False,
            health_check_staleness=int(shared.staleness[0]) if shared.staleness is not None and shared.staleness[0] >= 1
            else None)
        settings = Gateway.model_validate({
            "kind": KIND, "health_check": health, "outlier_detection": outlier,
            "retries": retries if retries.num_retries > 0 else None, "request_timeout": request_timeout,
            "panic_threshold": 0, "litellm": options})
        return Block(name, source, tuple(e for d in members if (e := endpoints[d.index]) is not None), settings,
                     where, tuple(dict.fromkeys(unmodelled)), cannot_bind=tuple(cannot_bind),
                     speaks=next(iter(speaks)) if len(speaks) == 1 and not cannot_bind else None)


@dataclass(frozen=True)
class _Shared:
    where: dict[tuple[str | int, ...], Source]
    unmodelled: list[Unmodelled]
    health: Any  # HealthCheck | None
    routing: tuple[bool, Source] | None
    staleness: tuple[float, Source] | None
    groups_filter: tuple[Any, Source] | None
    cooldowns_off: tuple[bool, Source] | None
    allowed: tuple[float, Source] | None
    module_allowed: tuple[float, Source] | None
    cooldown: tuple[float, Source] | None
    policy: tuple[Any, Source] | None
    strategy: tuple[Any, Source] | None
    retries: tuple[float, Source] | None
    timeout: tuple[float, Source] | None
    fallbacks: set[str]


def _dotted(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


# -- the rewrite --------------------------------------------------------------------------------

def rewrite(config: NativeConfig, job: RewriteJob) -> Rewritten:
    """The file as one run uses it: each bound group's deployments → its pool's replicas (their Toxiproxy
    listeners, in order, as http://HOST:PORT/v1, the OpenAI API the fakes serve); the probe callback added to
    ``litellm_settings.callbacks`` (after the user's own); in ``general_settings`` the client's x- headers
    forwarded to the deployments (each try carries the load's request id) and no ``master_key`` (the load sends
    none). The proxy's own port is not in the file: the adapter passes --host and --port."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    from harness.gateways.litellm import PROBE_MODULE

    yaml = _round_trip(config.text)
    data = yaml.load(config.text)
    # no master key (removed below): the proxy listens on 127.0.0.1 only and the load sends no credentials
    env: dict[str, str] = {"LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true"}
    models: dict[str, str] = {}
    for group, pool in job.binding.items():
        models[pool] = group
        replicas = iter(job.replicas_of(group))
        for entry in data["model_list"]:
            if entry.get("model_name") != group:
                continue
            replica = next(replicas)
            params = entry["litellm_params"]
            scheme = "https" if replica.tls is not None else "http"
            anthropic = provider_of(str(params.get("model") or ""), params.get("custom_llm_provider")) == ANTHROPIC
            # LiteLLM calls {api_base}/chat/completions for OpenAI's API, {api_base}/v1/messages for Anthropic's
            params["api_base"] = f"{scheme}://{replica.host}:{replica.port}" + ("" if anthropic else "/v1")
            key = params.get("api_key")
            key_variable = "ANTHROPIC_API_KEY" if anthropic else "OPENAI_API_KEY"
            if isinstance(key, str) and key.startswith(ENV_PREFIX) and key[len(ENV_PREFIX):] not in os.environ:
                env[key[len(ENV_PREFIX):]] = FAKE_KEY
            elif key is None and key_variable not in os.environ:
                env[key_variable] = FAKE_KEY
    probe = f"{PROBE_MODULE}.probe"
    settings = data.get("litellm_settings")
    if not isinstance(settings, CommentedMap):
        settings = CommentedMap()
        _append(data, "litellm_settings", settings)
    callbacks = settings.get("callbacks")
    if isinstance(callbacks, CommentedSeq):
        _append(callbacks, None, probe)
    elif callbacks is None:
        _append(settings, "callbacks", CommentedSeq([probe]))
    else:
        settings["callbacks"] = CommentedSeq([callbacks, probe])
    general = data.get("general_settings")
    if not isinstance(general, CommentedMap):
        general = CommentedMap()
        _append(data, "general_settings", general)
    if "master_key" in general:
        del general["master_key"]
    if general.get("forward_client_headers_to_llm_api") is not True:
        if "forward_client_headers_to_llm_api" in general:
            general["forward_client_headers_to_llm_api"] = True
        else:
            _append(general, "forward_client_headers_to_llm_api", True)
    out = StringIO()
    yaml.dump(data, out)
    modules = sorted({str(name).rsplit(".", 1)[0] for key in CALLBACK_KEYS
                      for name in _as_list(config_settings(config).get(key)) if _MODULE.match(str(name))})
    return Rewritten(out.getvalue(), {
        "models": models, "env": env,
        "settings": {pool: config.blocks[group].settings for group, pool in job.binding.items()},
        "modules": [str(config.path.parent / f"{m.replace('.', '/')}.py") for m in modules]})


def _round_trip(text: str) -> Any:
    """A ruamel.yaml round-trip loader and dumper with the indentation the file uses (comments, order and
    quoting are kept): the one of a few usual layouts that gives the file back unchanged, else LiteLLM's docs'."""
    from ruamel.yaml import YAML

    def make(mapping: int, sequence: int, offset: int) -> Any:
        yaml = YAML()
        yaml.preserve_quotes = True
        yaml.width = 4096
        yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
        return yaml

    for layout in ((2, 4, 2), (2, 2, 0), (4, 4, 2), (4, 6, 4), (4, 4, 0), (2, 6, 4)):
        yaml = make(*layout)
        out = StringIO()
        try:
            yaml.dump(yaml.load(text), out)
        except Exception:  # noqa: BLE001 - read() parsed it; a layout ruamel cannot reproduce is just not this one
            continue
        if out.getvalue() == text:
            return yaml
    return make(2, 4, 2)


def _append(container: Any, key: str | None, value: Any) -> None:
    """Add ``value`` at the end of a mapping (under ``key``) or of a list (``key`` None), moving the blank lines
    that followed the last item to after the new one (so the next section stays apart)."""
    from ruamel.yaml.comments import CommentedSeq
    from ruamel.yaml.error import CommentMark
    from ruamel.yaml.tokens import CommentToken

    mapping = key is not None
    last = (list(container)[-1] if len(container) else None) if mapping else (len(container) - 1 if container else None)
    if mapping:
        container[key] = value
    else:
        container.append(value)
    place = 2 if mapping else 0
    token = container.ca.items.get(last) if last is not None else None
    if token is None or len(token) <= place or token[place] is None or not isinstance(token[place], CommentToken):
        return
    first, newline, rest = token[place].value.partition("\n")
    if not newline or not rest:
        return
    token[place].value = first + "\n"
    moved = CommentToken("\n" + rest, CommentMark(0), None)
    if mapping and isinstance(value, CommentedSeq) and len(value):
        value.ca.items[len(value) - 1] = [moved, None]
    elif mapping and isinstance(value, dict):
        return  # a new section: it ends where the file ends
    elif mapping:
        container.ca.items[key] = [None, None, moved, None]
    else:
        container.ca.items[len(container) - 1] = [moved, None]


def config_settings(config: NativeConfig) -> dict[str, Any]:
    doc = load_yaml(config.text, config.file).data
    found = doc.get("litellm_settings") if isinstance(doc, dict) else None
    return found if isinstance(found, dict) else {}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]

