"""The docker runtime: a scenario's stack in containers, on a network of its own.

The same scenario as on the local runtime, the same journal: Envoy, one Toxiproxy and the
fake replicas each run in a container made from compose.yaml's definitions
(harness/runtimes/docker_compose.py), with the replica template scaled to the scenario's
pools. Inside the run's network

    gateway (Envoy) --toxiproxy:2000N--> toxiproxy --chat-N:8000--> replica chat[N]

Envoy reaches Toxiproxy by its service name, Toxiproxy reaches each replica by its name
(network aliases, as compose names them). From the host only ports published on 127.0.0.1
are used: the gateway's listener and admin API, Toxiproxy's API, each replica and each
proxy; Locust stays on the host and sends load to the published gateway port. Envoy writes
its health and outlier event logs into the run folder, which is mounted into its container
at the same path, so the journal and the reports read them as on local.

Everything a run creates carries its labels (harness/runtimes/docker_engine.py): ``down``
removes the run's containers, network and volumes after saving each container's output to
``logs/<component>.log``, also after Ctrl-C, and every ``up`` first removes what runs whose
harness was killed left behind. Images are built on first use, and rebuilt when their
inputs change (harness/runtimes/docker_images.py).

Not yet here (issue 4): memory limits with the restart policy as supervisor and OOMKilled
recorded, the fake DNS server as Envoy's resolver, and process faults (stop/kill/pause).
The containers are already per component and labelled with their replica, so those faults
need only ``container.pause()`` and friends on ``DockerRuntime.container(replica)``.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from harness.errors import PortInUse, StackError, StartupTimeout
from harness.gateways import GATEWAYS, GatewayAdapter, UpstreamAddress
from harness.processes import check_port_free, free_port
from harness.runtimes.base import Replica, Stack, wait_all_healthy
from harness.runtimes.docker_compose import (
    FIRST_PROXY_PORT,
    GATEWAY_ADMIN_PORT,
    GATEWAY_LISTEN_PORT,
    REPLICA_CONTROL_PORT,
    REPLICA_PORT,
    TOXIPROXY_API_PORT,
    Definitions,
    ServiceDefinition,
    load_definitions,
)
from harness.runtimes.docker_engine import (
    LABEL_COMPONENT,
    LABEL_NAME,
    connect,
    file_safe,
    reap_orphans,
    remove_run,
    run_labels,
)
from harness.runtimes.local import FAKE_OPTIONS
from harness.upstream_tls import PoolTls, health_answers
from harness.upstream_tls import prepare as prepare_tls
from harness.scenario import Scenario, Upstream
from harness.toxiproxy import ToxiproxyControl

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

READY_TIMEOUT = 30.0
STATUS_EVERY = 0.25  # how often a waiting loop asks the engine whether the container died


def _stderr(message: str) -> None:
    print(f"chaosgate: docker: {message}", file=sys.stderr, flush=True)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass(frozen=True)
class _Member:
    """One replica of the scenario: its pool, its index, and the port of its proxy inside Toxiproxy's container."""

    pool: Upstream
    index: int
    proxy_port: int

    @property
    def name(self) -> str:  # chat[0], as the scenario and the journal name it
        return f"{self.pool.name}[{self.index}]"

    @property
    def alias(self) -> str:  # chat-0: its name on the run's network, and its proxy's name
        return f"{self.pool.name}-{self.index}"


def new_run_id(scenario: str) -> str:
    """A name-safe, unique id: the scenario's name (shortened) and random hex."""
    stem = re.sub(r"[^a-z0-9_.-]", "-", scenario.lower()).strip("-.")[:32] or "run"
    return f"{stem}-{secrets.token_hex(4)}"


@contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM are ignored while the run's resources are removed, so teardown completes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class DockerRuntime:
    """Toxiproxy, the fake replicas and the gateway as containers of one labelled run."""

    name = "docker"
    capabilities: frozenset[str] = frozenset()  # no process faults or memory limits yet (docs/faults.md)

    def __init__(self, log: Callable[[str], None] = _stderr) -> None:
        self._log = log
        self._client: DockerClient | None = None
        self._run_id: str | None = None
        self._run_dir: Path | None = None
        self._network = ""
        self._containers: dict[str, Container] = {}
        self._tls: dict[str, PoolTls] = {}  # TLS pools: certificates in the run folder, mounted at the same path

    # -- up ------------------------------------------------------------------------
    def up(self, scenario: Scenario, run_dir: Path, gateway_port: int | None = None) -> Stack:
        run_dir.mkdir(parents=True, exist_ok=True)
        run_dir = run_dir.resolve()  # Envoy's container mounts it at this same path
        if gateway_port is not None:
            check_port_free(gateway_port, "the gateway")
        from harness.runtimes.docker_images import ensure_images  # builds pull in more; only when used

        client = self._client = connect()
        for orphan in reap_orphans(client):
            self._log(f"removed the containers of run {orphan}, whose harness is gone")
        if built := ensure_images(client, log=self._log):
            self._log(f"built {', '.join(built)}")
        definitions = load_definitions()

        run_id = self._run_id = new_run_id(scenario.name)
        self._run_dir = run_dir
        labels = run_labels(run_id, run_dir)
        self._network = f"chaosgate-{run_id}"
        try:
            client.networks.create(self._network, driver="bridge", labels=labels, check_duplicate=True,
                                   # no NAT: the containers talk to each other and to the host's published ports only
                                   options={"com.docker.network.bridge.enable_ip_masquerade": "false"})
        except Exception as exc:  # noqa: BLE001 - the SDK's errors, reported in one line
            raise StackError(f"cannot create the run's network {self._network}: {exc}") from exc

        members = [_Member(pool, index, FIRST_PROXY_PORT + i)
                   for i, (pool, index) in enumerate((p, n) for p in scenario.upstreams for n in range(p.replicas))]
        self._tls = prepare_tls(scenario, run_dir)
        self._start_backends(scenario, definitions, labels, members)
        toxiproxy, toxiproxy_url, replicas = self._connect_proxies(members)
        gateway = self._start_gateway(scenario, definitions, labels, run_dir, members, gateway_port)
        toxiproxy_ip = self._address(self._containers["toxiproxy"])
        stack = Stack(gateway=gateway, toxiproxy=toxiproxy, toxiproxy_url=toxiproxy_url, replicas=replicas,
                      run_dir=run_dir, gateway_version=gateway.version(),
                      gateway_addresses={m.name: f"{toxiproxy_ip}:{m.proxy_port}" for m in members})
        wait_all_healthy(stack, scenario, f"container output is saved in {run_dir / 'logs'} at teardown")
        return stack

    def _start_backends(self, scenario: Scenario, definitions: Definitions, labels: dict[str, str],
                        members: list[_Member]) -> None:
        """Start Toxiproxy and every replica (four at a time) and wait until each answers."""
        starts: list[tuple[str, Callable[[], Container]]] = [("toxiproxy", functools.partial(
            self._start, definitions.toxiproxy, "toxiproxy", "toxiproxy", labels, command=None,
            ports=[TOXIPROXY_API_PORT, *(m.proxy_port for m in members)]))]
        for m in members:
            # The same options as on the local runtime; the module and its data port come from compose.yaml.
            command = ["--name", m.name, "--seed", str(scenario.seed * 1000 + m.index),
                       # The control API listens inside the container and is published on the host's
                       # 127.0.0.1 only; the gateway's routes go to Toxiproxy, never to this port.
                       "--control-port", str(REPLICA_CONTROL_PORT), "--control-host", "0.0.0.0",
                       *FAKE_OPTIONS[m.pool.kind](m.pool, scenario),
                       *(self._tls[m.pool.name].fake_args() if m.pool.name in self._tls else [])]
            tls_dir = str(self._tls[m.pool.name].directory) if m.pool.name in self._tls else None
            starts.append((m.name, functools.partial(self._start, definitions.replica(m.pool.kind), m.name, m.alias,
                                                     labels, command=command,
                                                     ports=[REPLICA_PORT, REPLICA_CONTROL_PORT],
                                                     volumes={tls_dir: {"bind": tls_dir, "mode": "ro"}} if tls_dir else None)))
        with ThreadPoolExecutor(max_workers=4) as threads:  # on Ctrl-C, waits for the starts under way
            futures = [(name, threads.submit(start)) for name, start in starts]
            for name, future in futures:
                self._containers[name] = future.result()
        api = self._published(self._containers["toxiproxy"], TOXIPROXY_API_PORT)
        self._wait("toxiproxy", functools.partial(_answers, f"http://127.0.0.1:{api}/version"))
        for m in members:
            port = self._published(self._containers[m.name], REPLICA_PORT)
            control = self._published(self._containers[m.name], REPLICA_CONTROL_PORT)
            self._wait(m.name, functools.partial(health_answers, f"http://127.0.0.1:{port}/health",
                                                 self._tls.get(m.pool.name)))
            self._wait(m.name, functools.partial(_answers, f"http://127.0.0.1:{control}/fault"))

    def _connect_proxies(self, members: list[_Member]) -> tuple[ToxiproxyControl, str, dict[str, Replica]]:
        """One Toxiproxy proxy per replica, to its name on the run's network; the replicas as the host reaches them."""
        container = self._containers["toxiproxy"]
        api = self._published(container, TOXIPROXY_API_PORT)
        toxiproxy = ToxiproxyControl("127.0.0.1", api)
        replicas: dict[str, Replica] = {}
        for m in members:
            toxiproxy.create_proxy(m.alias, f"{m.alias}:{REPLICA_PORT}", listen=f"0.0.0.0:{m.proxy_port}")
            replica = self._containers[m.name]
            replicas[m.name] = Replica(m.name, m.pool.name, self._published(replica, REPLICA_PORT),
                                       m.alias, self._published(container, m.proxy_port),
                                       self._published(replica, REPLICA_CONTROL_PORT), m.pool.kind)
        return toxiproxy, f"http://127.0.0.1:{api}", replicas

    def _start_gateway(self, scenario: Scenario, definitions: Definitions, labels: dict[str, str], run_dir: Path,
                       members: list[_Member], gateway_port: int | None) -> GatewayAdapter:
        """Render the scenario's gateway config for the run's network and start the gateway on it."""
        published_listen = gateway_port or free_port()
        gateway = GATEWAYS[scenario.gateway.kind](
            scenario.gateway, listen_port=GATEWAY_LISTEN_PORT, admin_port=GATEWAY_ADMIN_PORT,
            load_pool=scenario.load_pool, bind_address="0.0.0.0",
            published_listen_port=published_listen, published_admin_port=free_port())
        upstreams = [UpstreamAddress(m.pool.name, m.name, "toxiproxy", m.proxy_port, m.pool.kind,
                                     self._tls[m.pool.name].trust() if m.pool.name in self._tls else None)
                     for m in members]
        config = gateway.write_config(upstreams, run_dir)
        self._containers[gateway.kind] = self._start(
            definitions.gateway, gateway.kind, "gateway", labels, command=gateway.argv(config)[1:], ports=[],
            fixed_ports={GATEWAY_LISTEN_PORT: published_listen, GATEWAY_ADMIN_PORT: gateway.published_admin_port},
            user=f"{os.getuid()}:{os.getgid()}", volumes={str(run_dir): {"bind": str(run_dir), "mode": "rw"}})
        self._wait(gateway.kind, gateway.is_ready)
        return gateway

    def _start(self, definition: ServiceDefinition, name: str, alias: str, labels: dict[str, str],
               command: list[str] | None, ports: list[int], fixed_ports: dict[int, int] | None = None,
               user: str | None = None, volumes: dict[str, dict[str, str]] | None = None) -> Container:
        """Create and start one container of the run from its compose definition."""
        from docker.errors import APIError, ImageNotFound
        from docker.types import EndpointConfig

        client = self._client
        if client is None or self._run_id is None:
            raise StackError("the docker runtime starts containers only inside up()")
        published: dict[str, Any] = {f"{port}/tcp": ("127.0.0.1", None) for port in ports}
        published.update({f"{inner}/tcp": ("127.0.0.1", outer) for inner, outer in (fixed_ports or {}).items()})
        options: dict[str, Any] = {
            "name": f"chaosgate-{self._run_id}-{file_safe(alias)}",
            "labels": {**definition.labels, **labels, LABEL_COMPONENT: definition.labels.get(LABEL_COMPONENT, alias),
                       LABEL_NAME: name},
            "environment": definition.environment,
            "network": self._network,
            "networking_config": {self._network: EndpointConfig(client.api.api_version, aliases=[alias])},
            "ports": published,
            "detach": True,
        }
        if definition.entrypoint is not None:
            options["entrypoint"] = definition.entrypoint
        if definition.healthcheck is not None:
            options["healthcheck"] = definition.healthcheck
        if user is not None:
            options["user"] = user
        if volumes:
            options["volumes"] = volumes
        try:
            container = client.containers.create(definition.image, command, **options)
        except ImageNotFound as exc:
            raise StackError(f"image {definition.image} is missing: run "
                             "`.venv/bin/python -m harness.runtimes.docker_cli build`") from exc
        except APIError as exc:
            raise StackError(f"cannot create the {name} container: {exc.explanation or exc}") from exc
        try:
            container.start()
        except APIError as exc:
            text = str(exc.explanation or exc)
            if "port is already allocated" in text or "address already in use" in text:
                raise PortInUse(f"a port published for {name} is already in use on 127.0.0.1: {text}") from exc
            raise StackError(f"cannot start the {name} container: {text}") from exc
        container.reload()
        return container

    @staticmethod
    def _published(container: Container, port: int) -> int:
        bindings = (container.attrs.get("NetworkSettings", {}).get("Ports") or {}).get(f"{port}/tcp") or []
        for binding in bindings:
            if binding.get("HostIp") in ("127.0.0.1", "") and binding.get("HostPort"):
                return int(binding["HostPort"])
        raise StackError(f"{container.name}: port {port} was not published on 127.0.0.1")

    def _address(self, container: Container) -> str:
        networks = container.attrs.get("NetworkSettings", {}).get("Networks") or {}
        address = (networks.get(self._network) or {}).get("IPAddress")
        if not address:
            raise StackError(f"{container.name} has no address on the network {self._network}")
        return str(address)

    def _wait(self, name: str, ready: Callable[[], bool], timeout: float = READY_TIMEOUT) -> None:
        """Poll ``ready`` until true; fail at once, with its last output, if the container stops."""
        container = self._containers[name]
        deadline = time.monotonic() + timeout
        next_status = time.monotonic() + STATUS_EVERY
        while time.monotonic() < deadline:
            if ready():
                return
            if time.monotonic() >= next_status:
                next_status = time.monotonic() + STATUS_EVERY
                container.reload()
                if container.status in ("exited", "dead"):
                    code = container.attrs.get("State", {}).get("ExitCode")
                    tail = container.logs(tail=8).decode(errors="replace").rstrip()
                    raise StackError(f"{name} (container {container.name}) exited with status {code} while starting:\n"
                                     f"{tail}")
            time.sleep(0.02)
        raise StartupTimeout(f"{name} (container {container.name}) was not ready after {timeout:g}s "
                             f"(its output: docker logs {container.name})")

    # -- for faults (issue 4) and tests ----------------------------------------------
    def container(self, component: str) -> Container:
        """The container of a component of the running stack: ``toxiproxy``, ``envoy`` or a replica (``chat[0]``)."""
        if component not in self._containers:
            raise StackError(f"no container for {component!r} in this run")
        return self._containers[component]

    @property
    def run_id(self) -> str | None:
        return self._run_id

    # -- down ------------------------------------------------------------------------
    def down(self) -> None:
        """Remove the run's containers, network and volumes (by label); idempotent, never raises."""
        if self._client is None or self._run_id is None:
            return
        log_dir = self._run_dir / "logs" if self._run_dir is not None else None
        with _signals_held():
            problems = remove_run(self._client, self._run_id, log_dir=log_dir)
        for problem in problems:
            self._log(f"teardown of run {self._run_id}: could not remove {problem} "
                      "(the next docker run removes it)")
        self._run_id = None
        self._containers = {}
