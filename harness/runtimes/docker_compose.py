"""compose.yaml as the docker runtime reads it: one definition of every service, for people and the harness.

A person runs the stack in compose.yaml as it is (``docker compose up``: Envoy, Toxiproxy,
three chat replicas, with the config files in harness/runtimes/images/compose/). The
harness takes from the same file, for each component, the image, entrypoint, default
command, health check, environment and labels, and adds per scenario what differs: the
replica count and each replica's arguments, the rendered Envoy config, the ports it
publishes on 127.0.0.1, its network and its labels.

The components the harness looks up: services ``gateway`` and ``toxiproxy``, and one
replica template per upstream kind, ``x-chaosgate-<kind>`` (``x-chaosgate-openai`` for
fakes/llm.py, ``x-chaosgate-anthropic`` for fakes/anthropic.py, ``x-chaosgate-mcp`` for
fakes/mcp.py; the ``chat-N`` and ``tools-0`` services are those templates plus a name and a seed). Compose interpolation is applied
the way compose does (``$$`` is a literal ``$``, ``${NAME:-default}``).

``python -m harness.runtimes.docker_cli render-compose`` rewrites the compose stack's Envoy and
Toxiproxy config files from scenarios/replica-reset.yaml (a test checks they match).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import StackError

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"
COMPOSE_CONFIG_DIR = Path(__file__).resolve().parent / "images" / "compose"
REFERENCE_SCENARIO = ROOT / "scenarios" / "replica-reset.yaml"

# Ports inside the containers; the same in compose.yaml and in the harness.
GATEWAY_LISTEN_PORT = 10000
GATEWAY_ADMIN_PORT = 9901
TOXIPROXY_API_PORT = 8474
REPLICA_PORT = 8000
REPLICA_CONTROL_PORT = 8001  # the fakes' control API inside a replica's container
FIRST_PROXY_PORT = 20000  # replica i of the stack is proxied on FIRST_PROXY_PORT + i

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")
_UNIT_NS = {"us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}


@dataclass(frozen=True)
class ServiceDefinition:
    """What compose.yaml says about one component, in the engine API's terms."""

    name: str
    image: str
    entrypoint: list[str] | None = None
    command: list[str] | None = None
    healthcheck: dict[str, Any] | None = None   # test, interval, timeout, retries, start_period (ns)
    environment: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


def _interpolate(value: Any) -> Any:
    """Compose's variable syntax: ``$$`` -> ``$``, ``${NAME}``, ``${NAME:-default}``, ``${NAME-default}``."""
    if isinstance(value, str):
        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, separator, default = match.group(1), match.group(2), match.group(3) or ""
            current = os.environ.get(name)
            if separator == ":-" and not current:
                return default
            if separator == "-" and current is None:
                return default
            return current or ""
        return re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}", substitute, value)
    if isinstance(value, list):
        return [_interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: _interpolate(v) for k, v in value.items()}
    return value


def compose_duration_ns(text: str | int | float) -> int:
    """``1s``, ``500ms``, ``1m30s`` (compose's durations) in nanoseconds."""
    if isinstance(text, (int, float)):
        return int(text * 1_000_000_000)
    parts = _DURATION.findall(text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise StackError(f"{COMPOSE_FILE}: {text!r} is not a duration such as '1s' or '500ms'")
    return int(sum(float(number) * _UNIT_NS[unit] for number, unit in parts))


def _argv(value: Any, where: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [str(v) for v in value]
    raise StackError(f"{COMPOSE_FILE}: {where} must be a list of arguments")


def _mapping(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, list):  # ["KEY=value", ...]
        return {key: rest for key, _, rest in (str(item).partition("=") for item in value)}
    return {str(k): str(v) for k, v in value.items()}


def _healthcheck(value: Any) -> dict[str, Any] | None:
    if not value or value.get("disable"):
        return None
    test = value.get("test")
    check: dict[str, Any] = {"test": test if isinstance(test, list) else ["CMD-SHELL", str(test)]}
    for key in ("interval", "timeout", "start_period"):
        if key in value:
            check[key] = compose_duration_ns(value[key])
    if "retries" in value:
        check["retries"] = int(value["retries"])
    return check


def _definition(name: str, raw: Any) -> ServiceDefinition:
    if not isinstance(raw, dict) or "image" not in raw:
        raise StackError(f"{COMPOSE_FILE}: {name} must be a mapping with an image")
    return ServiceDefinition(
        name=name, image=str(raw["image"]), entrypoint=_argv(raw.get("entrypoint"), f"{name}.entrypoint"),
        command=_argv(raw.get("command"), f"{name}.command"), healthcheck=_healthcheck(raw.get("healthcheck")),
        environment=_mapping(raw.get("environment")), labels=_mapping(raw.get("labels")))


@dataclass(frozen=True)
class Definitions:
    """Every service of compose.yaml, and the replica template of each upstream kind."""

    services: dict[str, ServiceDefinition]
    replicas: dict[str, ServiceDefinition]  # upstream kind (openai, mcp) -> template

    @property
    def gateway(self) -> ServiceDefinition:
        return self.services["gateway"]

    @property
    def toxiproxy(self) -> ServiceDefinition:
        return self.services["toxiproxy"]

    @property
    def dns(self) -> ServiceDefinition:
        """The fake DNS server (fakes/dns.py), in Toxiproxy's network namespace."""
        if "dns" not in self.services:
            raise StackError(f"{COMPOSE_FILE} has no dns service (the fake DNS server)")
        return self.services["dns"]

    def replica(self, kind: str) -> ServiceDefinition:
        if kind not in self.replicas:
            raise StackError(f"{COMPOSE_FILE} has no template for {kind} replicas (x-chaosgate-{kind})")
        return self.replicas[kind]


def load_definitions(path: Path = COMPOSE_FILE) -> Definitions:
    """The definitions the harness uses: services ``gateway`` and ``toxiproxy``, and ``x-chaosgate-<kind>``."""
    try:
        document = _interpolate(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError) as exc:
        raise StackError(f"cannot read {path}: {exc}") from exc
    services = {name: _definition(name, raw) for name, raw in (document.get("services") or {}).items()}
    for needed in ("gateway", "toxiproxy"):
        if needed not in services:
            raise StackError(f"{path}: the service {needed!r} is missing")
    replicas = {key.removeprefix("x-chaosgate-"): _definition(key, raw) for key, raw in document.items()
                if key.startswith("x-chaosgate-")}
    return Definitions(services, replicas)


# -- the compose stack's own config files --------------------------------------------

# The compose stack's pools: (name, kind, replicas); each replica is service <name>-<index>.
COMPOSE_POOLS = (("chat", "openai", 3), ("tools", "mcp", 1))


def render_compose_configs(scenario_file: Path = REFERENCE_SCENARIO) -> dict[str, str]:
    """The Envoy and Toxiproxy configs of the compose stack (COMPOSE_POOLS), rendered by the
    harness itself with a scenario's gateway settings: file name -> text."""
    from harness.gateways import UpstreamAddress
    from harness.gateways.envoy import EnvoyGateway
    from harness.scenario import load_scenario

    scenario = load_scenario(scenario_file)
    gateway = EnvoyGateway(scenario.gateway, listen_port=GATEWAY_LISTEN_PORT,  # the compose stack's gateway is Envoy
                           admin_port=GATEWAY_ADMIN_PORT, load_pool=COMPOSE_POOLS[0][0], bind_address="0.0.0.0")
    members = [(pool, kind, index) for pool, kind, count in COMPOSE_POOLS for index in range(count)]
    upstreams = [UpstreamAddress(pool, f"{pool}[{index}]", "toxiproxy", FIRST_PROXY_PORT + i, kind)
                 for i, (pool, kind, index) in enumerate(members)]
    envoy = yaml.safe_dump(gateway.config(upstreams, Path("/tmp")), sort_keys=False)
    proxies = [{"name": f"{pool}-{index}", "listen": f"0.0.0.0:{FIRST_PROXY_PORT + i}",
                "upstream": f"{pool}-{index}:{REPLICA_PORT}", "enabled": True}
               for i, (pool, _, index) in enumerate(members)]
    header = (f"# Rendered by `python -m harness.runtimes.docker_cli render-compose` from {scenario_file.relative_to(ROOT)}'s\n"
              "# gateway settings for the compose stack (compose.yaml); do not edit by hand.\n")
    return {"envoy.yaml": header + envoy, "toxiproxy.json": json.dumps(proxies, indent=2) + "\n"}


def write_compose_configs() -> list[Path]:
    """Rewrite the compose stack's config files; return their paths."""
    COMPOSE_CONFIG_DIR.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_compose_configs().items():
        (COMPOSE_CONFIG_DIR / name).write_text(text)
        written.append(COMPOSE_CONFIG_DIR / name)
    return written
