"""Attach to a gateway chaosgate did not start: ``chaosgate run SCENARIO --attach URL [--attach-admin URL]``.

chaosgate starts Toxiproxy and the replicas (fakes, or the user's own servers behind Toxiproxy), prints
the addresses the gateway's upstreams must point at (and, with ``gateway.config``, writes the user's file
rewritten to them), waits until the gateway answers through them, then runs the load, the faults and the
judging as usual. The gateway is not chaosgate's: it is never started, signalled or stopped.

With ``--attach-admin`` (Envoy's admin URL, HAProxy's stats socket ``tcp://HOST:PORT``, the LiteLLM
proxy's URL) the observer reads the gateway's view of health through the adapter of the scenario's
gateway kind. Without it there is no such view: the expectations that need it (``needs_gateway_view``)
are refused at validation, and the others are judged from the client's side and the replicas'.
See docs/own-config/attach.md.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from harness.errors import ChaosgateError, StackError, StartupTimeout
from harness.gateways.base import UPSTREAM_HEADER, GatewayProcessBase, HostHealth, ShapesLoad
from harness.own_config.binding import LOOPBACK_NAMES, is_loopback

if TYPE_CHECKING:
    from harness.expectations import Expectation
    from harness.gateways import GatewayAdapter
    from harness.runtimes.base import Replica
    from harness.scenario import Scenario

ATTACH_FILE = "attach.json"  # in the run's folder: the addresses the gateway must use, and the file to load
DEFAULT_WAIT = 120.0         # how long chaosgate waits for the gateway to answer through its upstreams
PROBE_TIMEOUT = 2.0
ATTACH_REFUSED = ("--attach runs on the local runtime only: the docker runtime's Toxiproxy listens on the run's "
                  "network, which a gateway chaosgate did not start cannot reach; use --runtime local")
REPLICA_HEADER = "x-chaosgate-replica"  # stamped by the fakes on every answer (fakes/identity.py)
# What --attach-admin is for each gateway kind: the URL scheme it takes, and what it names.
ADMIN_SCHEMES = {"envoy": ("http", "Envoy's admin URL, e.g. http://127.0.0.1:9901"),
                 "haproxy": ("tcp", "HAProxy's stats socket (level admin) as tcp://HOST:PORT"),
                 "litellm": ("http", "the LiteLLM proxy's own URL (with chaosgate's probe callback loaded)")}


class AttachError(ChaosgateError):
    """An --attach or --attach-admin that cannot be used (said before anything starts)."""


@dataclass(frozen=True)
class Attach:
    """The running gateway chaosgate attaches to."""

    url: str                      # where clients reach it: http://HOST:PORT (no trailing slash)
    admin_url: str | None = None  # where its view of health is read; None: not read
    wait: float = DEFAULT_WAIT    # how long to wait for it to answer through chaosgate's upstreams
    log_view: bool = False        # its view is read from the logs the file chaosgate wrote makes it keep (nginx)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        return _port(self.url)

    @property
    def admin_host(self) -> str | None:
        return urlsplit(self.admin_url).hostname if self.admin_url else None

    @property
    def admin_port(self) -> int | None:
        return _port(self.admin_url) if self.admin_url else None

    @property
    def gateway_view(self) -> bool:
        """Whether the observer reads the gateway's own view of health."""
        return self.admin_url is not None or self.log_view


# Gateways whose view of health chaosgate reads from logs that the file it writes makes the gateway keep
# in the run's folder (nginx OSS has no API): attached, they have that view when they run that file.
LOG_VIEW_KINDS = frozenset({"nginx"})


def log_view(scenario: Scenario) -> bool:
    """Whether an attached gateway of this scenario shows its view of health without --attach-admin: it is read
    from the logs of the rewritten gateway.config (nginx), which the gateway must run."""
    return scenario.gateway.kind in LOG_VIEW_KINDS and scenario.gateway.config is not None


def _port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def parse_attach(url: str, admin_url: str | None, kind: str, allow_hosts: tuple[str, ...] = (),
                 wait: float = DEFAULT_WAIT) -> Attach:
    """``--attach URL`` and ``--attach-admin URL`` for a gateway of ``kind``; AttachError saying what is wrong."""
    allowed = {host.lower().strip("[]") for host in allow_hosts}
    problems: list[str] = []

    def check(option: str, value: str, schemes: tuple[str, ...]) -> None:
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError as exc:
            problems.append(f"{option} {value}: {exc}")
            return
        if parts.scheme not in schemes or not parts.hostname or (parts.path not in ("", "/")):
            problems.append(f"{option} {value}: expected {' or '.join(f'{s}://HOST:PORT' for s in schemes)}")
            return
        if port is None and parts.scheme == "tcp":
            problems.append(f"{option} {value}: expected a port (tcp://HOST:PORT)")
        host = parts.hostname
        if not is_loopback(host) and host.lower() not in allowed:
            problems.append(f"{option} {value}: {host} is not this machine; chaosgate sends load only to loopback "
                            f"addresses unless you name the host with --allow-host {host}")

    check("--attach", url, ("http",))
    if admin_url is not None:
        if kind not in ADMIN_SCHEMES:
            problems.append(f"--attach-admin: chaosgate cannot read a running {kind}'s view of health through an "
                            f"address (it reads {kind}'s logs: with gateway.config, those of the file chaosgate "
                            f"writes, which {kind} must run); attach without --attach-admin")
        else:
            scheme, what = ADMIN_SCHEMES[kind]
            check("--attach-admin", admin_url, (scheme,))
            if problems and problems[-1].startswith(f"--attach-admin {admin_url}: expected {scheme}://"):
                problems[-1] += f" ({what})"
    if wait <= 0:
        problems.append(f"--attach-wait: expected a number of seconds above 0, got {wait:g}")
    if problems:
        raise AttachError("cannot attach: " + "; ".join(problems))
    return Attach(url.rstrip("/"), admin_url.rstrip("/") if admin_url else None, wait)


def scenario_problems(attach: Attach, scenario: Scenario) -> list[str]:
    """What the scenario asks of an attached gateway that it cannot give."""
    if attach.admin_url is not None and scenario.gateway.kind == "litellm" and scenario.gateway.config is None:
        return ["--attach-admin: a LiteLLM proxy's view of health is read through chaosgate's probe callback "
                "(/chaosgate/deployments), which the proxy loads only from the file chaosgate writes: set gateway.config "
                "(or --gateway-config) to your config.yaml and load the rewritten file chaosgate prints"]
    return []


def needs_gateway_view(expectation: Expectation) -> str | None:
    """Why ``expectation`` cannot be judged without the gateway's own view of health (None: it can)."""
    if expectation.kind in ("upstream_unhealthy", "upstream_healthy"):
        return "it is judged from the gateway's view of health"
    if expectation.kind == "diagnosis":
        return "chaosgate diagnose reads the gateway's admin view"
    if getattr(expectation, "window", None) == "after_detection":
        return "its window after_detection begins when the gateway marks the replica unhealthy"
    return None


# What an adapter reads from logs the gateway writes only when it runs the file chaosgate wrote (its try log,
# its health event logs): without that file, a log in the run folder is another run's.
_WRITTEN_FILE_LOGS = ("upstream_attempts", "parse_upstream_attempts", "health_event_logs", "parse_health_event")


class AttachedGateway:
    """The adapter of the scenario's gateway kind, pointed at a gateway chaosgate did not start: requests go
    to ``--attach``, health is read at ``--attach-admin`` (none without it), and nothing is ever started,
    signalled or stopped. Everything else (the rewrite of gateway.config, how its logs read) is the adapter's."""

    def __init__(self, inner: GatewayAdapter, attach: Attach) -> None:
        self._inner = inner
        self.attach = attach
        self.kind = inner.kind
        self.config_name = inner.config_name
        self.written: Path | None = None  # the rewritten gateway.config, when the scenario has one
        self._http = httpx.Client(timeout=PROBE_TIMEOUT)

    @property
    def inner(self) -> GatewayAdapter:
        return self._inner

    @property
    def url(self) -> str:
        return self.attach.url

    @property
    def admin_url(self) -> str | None:
        return self.attach.admin_url

    def write_config(self, upstreams: list[Any], run_dir: Path) -> Path:
        self.written = self._inner.write_config(upstreams, run_dir)
        return self.written

    def argv(self, config: Path) -> list[str]:
        raise StackError(f"chaosgate does not start an attached gateway ({self.url})")

    def is_ready(self) -> bool:
        return True  # what counts is answering through chaosgate's upstreams: wait_served

    def host_health(self) -> dict[str, HostHealth]:
        if not self.attach.gateway_view:
            raise StackError("the gateway's view of health is not read (attached without --attach-admin)")
        return self._inner.host_health()

    def version(self) -> str:
        return f"attached at {self.url}"

    def __getattr__(self, name: str) -> Any:
        """What only some adapters have (their try log, their health event logs, their health rounds): the
        adapter's own, except the logs the gateway writes only when it runs the rewritten file chaosgate wrote."""
        if name in _WRITTEN_FILE_LOGS and self.written is None:
            raise AttributeError(name)
        if name == "health_rounds" and not self.attach.gateway_view:
            raise AttributeError(name)
        return getattr(self._inner, name)


def attached_gateway(scenario: Scenario, attach: Attach, free_port: Callable[[], int]) -> AttachedGateway:
    """The adapter of the scenario's gateway kind for the gateway at ``attach``: a rewritten gateway.config gets
    the attach URL's port as its listener and the attach-admin port as its admin (a free one without it)."""
    from harness.gateways import GATEWAYS

    kind = scenario.gateway.kind
    admin_port = attach.admin_port or free_port()
    inner = GATEWAYS[kind](scenario.gateway, listen_port=attach.port, admin_port=admin_port, load_pool=scenario.load_pool,
                           bind_address="127.0.0.1" if attach.host.lower() in LOOPBACK_NAMES else attach.host,
                           # LiteLLM's view is read at the proxy's own URL: the adapter's URL is then --attach-admin's
                           published_listen_port=admin_port if kind == "litellm" and attach.admin_url else attach.port,
                           published_admin_port=admin_port)
    if isinstance(inner, ShapesLoad):  # Portkey: its config is rendered by a run and sent with every request
        raise StackError(f"--attach is not supported for {kind} yet: its routing config travels in each request "
                         "(rendered from the scenario by the adapter), and an attached gateway's config is not "
                         "chaosgate's; let chaosgate start it")
    if isinstance(inner, GatewayProcessBase):  # where the adapter reads the gateway's view
        inner.published_host = attach.admin_host or attach.host
    return AttachedGateway(inner, attach)


def announce(replicas: dict[str, Replica], gateway_addresses: dict[str, str], attach: Attach, run_dir: Path,
             written: Path | None, log: Any, command: list[str] | None = None) -> Path:
    """Write ``run_dir/attach.json`` and print what the gateway must use: one address per replica (by pool),
    and the rewritten file to load, if any."""
    pools: dict[str, list[str]] = {}
    for name, replica in replicas.items():
        pools.setdefault(replica.pool, []).append(gateway_addresses[name])
    document = {"gateway": attach.url, "gateway_admin": attach.admin_url,
                "replicas": {name: gateway_addresses[name] for name in replicas}, "pools": pools,
                "config": str(written) if written is not None else None, "command": command}
    path = run_dir / ATTACH_FILE
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    log(f"attach: point the gateway's upstreams at chaosgate's Toxiproxy listeners (also in {path}):")
    for pool, addresses in pools.items():
        log(f"attach:   pool {pool}: {', '.join(addresses)}")
    if written is not None:
        log(f"attach: load this file into the gateway: {written} (its changes: {written}.diff)")
        if command:
            log(f"attach: as chaosgate would start it: {shlex.join(command)}")
    log(f"attach: waiting up to {attach.wait:g}s for {attach.url} to answer through them")
    return path


def served_by(response: httpx.Response, replicas: dict[str, Replica], gateway_addresses: dict[str, str]) -> str | None:
    """The replica of this run that served ``response`` (None: none of them, as far as it says)."""
    if response.status_code != 200:
        return None
    if (name := response.headers.get(REPLICA_HEADER)) in replicas:
        return name
    by_address = {address: name for name, address in gateway_addresses.items()}
    if (picked := by_address.get(response.headers.get(UPSTREAM_HEADER) or "")) is not None:
        return picked
    real = [name for name, replica in replicas.items() if replica.real]
    return real[0] if real and len(real) == len(replicas) else None  # the user's servers stamp nothing


def wait_served(attach: Attach, path: str, replicas: dict[str, Replica], gateway_addresses: dict[str, str],
                deadline: float | None = None) -> str:
    """Send a chat completion through the attached gateway until one of the run's replicas serves it (the name
    of that replica); StartupTimeout saying what the gateway last answered after ``attach.wait`` seconds."""
    deadline = deadline if deadline is not None else time.monotonic() + attach.wait
    body = {"model": "fake-model", "max_tokens": 1, "messages": [{"role": "user", "content": "attach"}]}
    last = "nothing yet"
    with httpx.Client(timeout=PROBE_TIMEOUT) as client:
        while True:
            try:
                response = client.post(f"{attach.url}{path}/v1/chat/completions", json=body)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if (replica := served_by(response, replicas, gateway_addresses)) is not None:
                    return replica
                last = f"HTTP {response.status_code}" + (
                    f" from {response.headers[REPLICA_HEADER]}, which is not a replica of this run"
                    if REPLICA_HEADER in response.headers else f": {response.text[:120].strip()}")
            if time.monotonic() >= deadline:
                raise StartupTimeout(
                    f"the gateway at {attach.url} did not answer through chaosgate's upstreams within {attach.wait:g}s "
                    f"(last: {last}); point its upstreams at the addresses printed above (or load the file "
                    f"printed above), or give it longer with --attach-wait")
            time.sleep(0.2)
