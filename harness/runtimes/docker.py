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

Each replica is a pod of two containers: a network sandbox that holds its name, address and
published ports, and the fake's container in that namespace, so a dead fake's port refuses
connections as a dead local process's does. Process faults and OOM kills act on the fake's
container through the engine (kill, pause, stop/start, a memory limit with no swap); the
harness is the orchestrator that restarts dead replicas with the scenario's backoff and
journals why they died (docker_supervisor.py). The gateway's container is watched through the
engine's ``die`` events (docker_gateway.py): a gateway that dies mid-run is journalled
``gateway.exited`` and fails the run, as on local. A scenario with a dns pool runs the gateway as a
pod too: Envoy and the fake DNS server (compose.yaml's ``dns``) in Toxiproxy's network
namespace, where the names answer 127.0.0.1 as on local.
"""

from __future__ import annotations

import dataclasses
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


from harness.attach import ATTACH_REFUSED, Attach
from harness.attempts import prepare_attempts_dir, replica_attempts_file
from harness.errors import PortInUse, StackError, StartupTimeout
from harness.gateways import GATEWAYS, GatewayAdapter, UpstreamAddress
from harness.processes import answers, check_port_free, free_port
from harness.gateways.base import UpstreamResolver
from harness.runtimes.base import DNS, MEMORY_LIMIT, PROCESS_CONTROL, DnsServer, Replica, Stack, wait_all_healthy
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
from harness.runtimes.docker_gateway import GatewayContainer
from harness.runtimes.docker_supervisor import ContainerSupervisor
from harness.runtimes.local import FAKE_OPTIONS
from harness.supervisor import BackoffPolicy
from harness.upstream_tls import PoolTls, health_answers
from harness.upstream_tls import prepare as prepare_tls
from harness.scenario import Scenario, Upstream
from harness.toxiproxy import ToxiproxyControl

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

READY_TIMEOUT = 30.0
# A replica moved by a port change listens here inside its network namespace; published at creation,
# like every port of a container, on the host's 127.0.0.1 (_Member.spare_host_port).
REPLICA_SPARE_PORT = 8002
SANDBOX_COMMAND = ["sleep", "infinity"]  # the process that holds a replica's network namespace
# The fake DNS server in the gateway pod (scenarios with a dns pool): DNS on 127.0.0.1, control API published.
DNS_PORT = 5353
DNS_CONTROL_PORT = 8003
# IPv6 loopback in the gateway pod: wrong_address and flip answers are ::1, as on local.
POD_SYSCTLS = {"net.ipv6.conf.all.disable_ipv6": "0", "net.ipv6.conf.lo.disable_ipv6": "0"}
STATUS_EVERY = 0.25  # how often a waiting loop asks the engine whether the container died


def _stderr(message: str) -> None:
    print(f"chaosgate: docker: {message}", file=sys.stderr, flush=True)



@dataclass(frozen=True)
class _Member:
    """One replica of the scenario: its pool, its index, and the port of its proxy inside Toxiproxy's container."""

    pool: Upstream
    index: int
    proxy_port: int
    host_port: int          # its data port, published on the host's 127.0.0.1 (fixed: restarts keep it)
    host_control_port: int  # its control API, likewise
    spare_host_port: int    # REPLICA_SPARE_PORT, where it listens after a port change, likewise

    @property
    def name(self) -> str:  # chat[0], as the scenario and the journal name it
        return f"{self.pool.name}[{self.index}]"

    @property
    def alias(self) -> str:  # chat-0: its name on the run's network, and its proxy's name
        return f"{self.pool.name}-{self.index}"


@dataclass(frozen=True)
class _Pod:
    """The host ports of the gateway pod (Envoy and the fake DNS server in Toxiproxy's network namespace)."""

    listen: int
    admin: int
    dns_control: int


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
    # Process faults through kill/pause/stop of a replica's container, memory limits as the container's
    # (docs/faults.md); the harness restarts dead replicas (harness/runtimes/docker_supervisor.py).
    # DNS: pools resolved by name through the fake DNS server, in the gateway pod (see up()).
    capabilities: frozenset[str] = frozenset({PROCESS_CONTROL, MEMORY_LIMIT, DNS})

    def __init__(self, log: Callable[[str], None] = _stderr) -> None:
        self._log = log
        self._client: DockerClient | None = None
        self._run_id: str | None = None
        self._run_dir: Path | None = None
        self._network = ""
        self._containers: dict[str, Container] = {}
        self._tls: dict[str, PoolTls] = {}  # TLS pools: certificates in the run folder, mounted at the same path
        self._supervisor: ContainerSupervisor | None = None
        self._gateway_container: GatewayContainer | None = None
        self._sandboxes: dict[str, Container] = {}  # replica -> the container holding its network namespace
        self._pod: _Pod | None = None  # the gateway pod's published ports (scenarios with a dns pool)

    # -- up ------------------------------------------------------------------------
    def up(self, scenario: Scenario, run_dir: Path, gateway_port: int | None = None,
           attach: Attach | None = None, on_start: Callable[[], None] | None = None) -> Stack:
        if attach is not None:
            raise StackError(ATTACH_REFUSED)
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
        if on_start is not None:  # every check passed, the images are built: containers start from here
            on_start()

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

        members = [_Member(pool, index, FIRST_PROXY_PORT + i, free_port(), free_port(), free_port())  # never repeats
                   for i, (pool, index) in enumerate((p, n) for p in scenario.upstreams for n in range(p.replicas))]
        self._tls = prepare_tls(scenario, run_dir)
        prepare_attempts_dir(run_dir, any_user=True)  # mounted into every replica's container at the same path
        # A scenario with a dns pool runs its gateway as a pod: Envoy and the fake DNS server in Toxiproxy's
        # network namespace, so the names answer 127.0.0.1 (the fake DNS server answers nothing else) and the
        # proxies listen there, as on local; the pod's ports are published on Toxiproxy's container.
        pod = self._pod = _Pod(gateway_port or free_port(), free_port(), free_port()) \
            if any(pool.dns is not None for pool in scenario.upstreams) else None
        self._start_backends(scenario, definitions, labels, members)
        toxiproxy, toxiproxy_url, replicas = self._connect_proxies(members)
        dns = self._start_dns(scenario, definitions, labels, members, pod) if pod is not None else None
        gateway = self._start_gateway(scenario, definitions, labels, run_dir, members, gateway_port, dns)
        toxiproxy_ip = "127.0.0.1" if pod is not None else self._address(self._containers["toxiproxy"])
        supervisor = self._supervisor = ContainerSupervisor(client, run_id, run_dir / "logs")
        for m in members:
            supervisor.add(m.name, self._containers[m.name],
                           ready=functools.partial(self._replica_answers, m),
                           create=functools.partial(self._replica_container, scenario, definitions, labels, m),
                           policy=BackoffPolicy(m.pool.restart.initial_backoff, m.pool.restart.factor,
                                                m.pool.restart.max_backoff),
                           port=m.host_port, spare_port=m.spare_host_port)
        # the gateway's container, watched during the run like the local runtime's gateway process (gateway.exited)
        watched = self._gateway_container = GatewayContainer(self._containers[gateway.kind])
        watched.start()
        stack = Stack(gateway=gateway, toxiproxy=toxiproxy, toxiproxy_url=toxiproxy_url, replicas=replicas,
                      run_dir=run_dir, gateway_version=gateway.version(),
                      gateway_addresses={m.name: f"{toxiproxy_ip}:{m.proxy_port}" for m in members},
                      process_control=supervisor, dns=dns, gateway_process=watched,
                      gateway_log=str(run_dir / "logs" / f"{file_safe(gateway.kind)}.log"))
        wait_all_healthy(stack, scenario, f"container output is saved in {run_dir / 'logs'} at teardown")
        return stack

    def _start_backends(self, scenario: Scenario, definitions: Definitions, labels: dict[str, str],
                        members: list[_Member]) -> None:
        """Start Toxiproxy and every replica (four at a time) and wait until each answers."""
        pod = self._pod
        starts: list[tuple[str, Callable[[], Container]]] = [("toxiproxy", functools.partial(
            self._start, definitions.toxiproxy, "toxiproxy", "toxiproxy", labels, command=None,
            # in the gateway pod the proxies listen on its loopback only (see _connect_proxies): not published
            ports=[TOXIPROXY_API_PORT, *(m.proxy_port for m in members if pod is None)],
            fixed_ports={GATEWAY_LISTEN_PORT: pod.listen, GATEWAY_ADMIN_PORT: pod.admin,
                         DNS_CONTROL_PORT: pod.dns_control} if pod is not None else None,
            sysctls=POD_SYSCTLS if pod is not None else None))]
        for m in members:
            starts.append((m.name, functools.partial(self._start_replica, scenario, definitions, labels, m)))
        with ThreadPoolExecutor(max_workers=4) as threads:  # on Ctrl-C, waits for the starts under way
            futures = [(name, threads.submit(start)) for name, start in starts]
            for name, future in futures:
                self._containers[name] = future.result()
        api = self._published(self._containers["toxiproxy"], TOXIPROXY_API_PORT)
        self._wait("toxiproxy", functools.partial(answers, f"http://127.0.0.1:{api}/version"))
        for m in members:
            self._wait(m.name, functools.partial(self._replica_answers, m, m.host_port))

    def _start_replica(self, scenario: Scenario, definitions: Definitions, labels: dict[str, str],
                       m: _Member) -> Container:
        """Replica ``m`` as a pod: a network sandbox (the name on the run's network, the published ports),
        then the fake's container in its network namespace. The fake's container is what faults kill,
        pause and restart: while it is dead its name still resolves and its ports refuse connections,
        as a process's do on the local runtime (and a crashed container's in a Kubernetes pod)."""
        definition = definitions.replica(m.pool.kind)
        # Its health check is the replica's: run in the shared namespace, it asks the fake on 127.0.0.1.
        sandbox = dataclasses.replace(definition, entrypoint=SANDBOX_COMMAND, command=None,
                                      labels={**definition.labels, LABEL_COMPONENT: "replica-network"})
        self._sandboxes[m.name] = self._start(
            sandbox, f"{m.name} network", m.alias, labels, command=None, ports=[], container_suffix="-net",
            fixed_ports={REPLICA_PORT: m.host_port, REPLICA_CONTROL_PORT: m.host_control_port,
                         REPLICA_SPARE_PORT: m.spare_host_port})
        return self._replica_container(scenario, definitions, labels, m, m.host_port)

    def _replica_container(self, scenario: Scenario, definitions: Definitions, labels: dict[str, str], m: _Member,
                           host_port: int) -> Container:
        """Create and start the fake's container of replica ``m`` in its sandbox's network namespace, listening on
        compose.yaml's data port (published on ``m.host_port``), or, after a port change (``host_port`` is
        ``m.spare_host_port``), on REPLICA_SPARE_PORT: the port its proxy dials then has nobody on it."""
        listen = REPLICA_PORT if host_port == m.host_port else REPLICA_SPARE_PORT
        assert self._run_dir is not None  # set by up() before any replica starts
        attempts = replica_attempts_file(self._run_dir, m.name)
        # The same options as on the local runtime; the module and its data port come from compose.yaml.
        command = ["--name", m.name, "--seed", str(scenario.seed * 1000 + m.index),
                   # The control API listens inside the container and is published on the host's
                   # 127.0.0.1 only; the gateway's routes go to Toxiproxy, never to this port.
                   "--control-port", str(REPLICA_CONTROL_PORT), "--control-host", "0.0.0.0",
                   *FAKE_OPTIONS[m.pool.kind](m.pool, scenario),
                   *(self._tls[m.pool.name].fake_args() if m.pool.name in self._tls else []),
                   *(["--port", str(listen)] if listen != REPLICA_PORT else []),  # the last --port wins
                   "--attempts-file", str(attempts)]
        tls_dir = str(self._tls[m.pool.name].directory) if m.pool.name in self._tls else None
        volumes = {str(attempts.parent): {"bind": str(attempts.parent), "mode": "rw"}}
        if tls_dir:
            volumes[tls_dir] = {"bind": tls_dir, "mode": "ro"}
        limit = m.pool.memory_limit
        return self._start(definitions.replica(m.pool.kind), m.name, m.alias, labels, command=command, ports=[],
                           join=self._sandboxes[m.name], volumes=volumes,
                           # no swap: memswap_limit equal to the limit, as the local runtime's memsw limit
                           memory={"mem_limit": limit, "memswap_limit": limit} if limit is not None else None)

    def _replica_answers(self, m: _Member, host_port: int) -> bool:
        """Whether replica ``m`` published on ``host_port`` answers on its health and control endpoints."""
        return (health_answers(f"http://127.0.0.1:{host_port}/health", self._tls.get(m.pool.name))
                and answers(f"http://127.0.0.1:{m.host_control_port}/fault"))

    def _start_dns(self, scenario: Scenario, definitions: Definitions, labels: dict[str, str], members: list[_Member],
                   pod: _Pod) -> DnsServer:
        """The fake DNS server in the gateway pod, one name per replica of every dns pool, answering 127.0.0.1."""
        names = {m.name: (m.pool.dns.hostname(m.pool.name, m.index), m.pool.dns.ttl)
                 for m in members if m.pool.dns is not None}
        # compose.yaml's dns service (DNS on 127.0.0.1:DNS_PORT, control API on DNS_CONTROL_PORT), with the scenario's names
        records = [f"--record={name}=127.0.0.1@{ttl}" for name, ttl in names.values()]
        self._containers["dns"] = self._start(definitions.dns, "dns", "dns", labels, command=records, ports=[],
                                              join=self._containers["toxiproxy"])
        control_url = f"http://127.0.0.1:{pod.dns_control}"
        self._wait("dns", functools.partial(answers, f"{control_url}/stats"))
        return DnsServer(address=f"127.0.0.1:{DNS_PORT}", control_url=control_url,
                         names={replica: name for replica, (name, _) in names.items()},
                         ports={m.name: m.proxy_port for m in members if m.name in names},
                         # a flip's second proxy, in Toxiproxy's container, dials the replica by its name
                         backends={m.name: f"{m.alias}:{REPLICA_PORT}" for m in members if m.name in names})

    def _connect_proxies(self, members: list[_Member]) -> tuple[ToxiproxyControl, str, dict[str, Replica]]:
        """One Toxiproxy proxy per replica, to its name on the run's network; the replicas as the host reaches them."""
        container = self._containers["toxiproxy"]
        api = self._published(container, TOXIPROXY_API_PORT)
        toxiproxy = ToxiproxyControl("127.0.0.1", api)
        replicas: dict[str, Replica] = {}
        for m in members:
            # In the gateway pod the proxies listen on 127.0.0.1 only, as on local: Toxiproxy (Go) listening on
            # 0.0.0.0 would also answer on [::1], where the dns faults' wrong address must find nobody.
            listen = "127.0.0.1" if self._pod is not None else "0.0.0.0"
            toxiproxy.create_proxy(m.alias, f"{m.alias}:{REPLICA_PORT}", listen=f"{listen}:{m.proxy_port}")
            proxy_port = m.proxy_port if self._pod is not None else self._published(container, m.proxy_port)
            replicas[m.name] = Replica(m.name, m.pool.name, m.host_port, m.alias, proxy_port,
                                       m.host_control_port, m.pool.kind)
        return toxiproxy, f"http://127.0.0.1:{api}", replicas

    def _start_gateway(self, scenario: Scenario, definitions: Definitions, labels: dict[str, str], run_dir: Path,
                       members: list[_Member], gateway_port: int | None, dns: DnsServer | None) -> GatewayAdapter:
        """Render the scenario's gateway config for the run's network and start the gateway on it (in the
        gateway pod, Toxiproxy's network namespace, when the scenario resolves a pool by name)."""
        pod = self._pod
        published_listen = pod.listen if pod is not None else gateway_port or free_port()
        published_admin = pod.admin if pod is not None else free_port()
        gateway = GATEWAYS[scenario.gateway.kind](
            scenario.gateway, listen_port=GATEWAY_LISTEN_PORT, admin_port=GATEWAY_ADMIN_PORT,
            load_pool=scenario.load_pool, bind_address="0.0.0.0",
            published_listen_port=published_listen, published_admin_port=published_admin)
        upstreams = [UpstreamAddress(m.pool.name, m.name,
                                     (dns.names[m.name] if dns is not None and m.name in dns.names
                                      else "127.0.0.1" if pod is not None else "toxiproxy"),
                                     m.proxy_port, m.pool.kind,
                                     self._tls[m.pool.name].trust() if m.pool.name in self._tls else None,
                                     UpstreamResolver("127.0.0.1", DNS_PORT, m.pool.dns)
                                     if dns is not None and m.pool.dns is not None else None, m.pool.fallback)
                     for m in members]
        config = gateway.write_config(upstreams, run_dir)
        self._containers[gateway.kind] = self._start(
            definitions.gateway, gateway.kind, "gateway", labels, command=gateway.argv(config)[1:], ports=[],
            fixed_ports=None if pod is not None else {GATEWAY_LISTEN_PORT: published_listen,
                                                      GATEWAY_ADMIN_PORT: published_admin},
            join=self._containers["toxiproxy"] if pod is not None else None,
            user=f"{os.getuid()}:{os.getgid()}", volumes={str(run_dir): {"bind": str(run_dir), "mode": "rw"}})
        self._wait(gateway.kind, gateway.is_ready)
        return gateway

    def _start(self, definition: ServiceDefinition, name: str, alias: str, labels: dict[str, str],
               command: list[str] | None, ports: list[int], fixed_ports: dict[int, int] | None = None,
               user: str | None = None, volumes: dict[str, dict[str, str]] | None = None,
               memory: dict[str, int] | None = None, join: Container | None = None,
               container_suffix: str = "", sysctls: dict[str, str] | None = None) -> Container:
        """Create and start one container of the run from its compose definition: on the run's network with
        ``alias``, or in the network namespace of ``join`` (then it has no address or ports of its own)."""
        from docker.errors import APIError, ImageNotFound
        from docker.types import EndpointConfig

        client = self._client
        if client is None or self._run_id is None:
            raise StackError("the docker runtime starts containers only inside up()")
        published: dict[str, Any] = {f"{port}/tcp": ("127.0.0.1", None) for port in ports}
        published.update({f"{inner}/tcp": ("127.0.0.1", outer) for inner, outer in (fixed_ports or {}).items()})
        options: dict[str, Any] = {
            "name": f"chaosgate-{self._run_id}-{file_safe(alias)}{container_suffix}",
            "labels": {**definition.labels, **labels, LABEL_COMPONENT: definition.labels.get(LABEL_COMPONENT, alias),
                       LABEL_NAME: name},
            "environment": definition.environment,
            "detach": True,
        }
        if join is not None:
            options["network_mode"] = f"container:{join.id}"
        else:
            options.update(network=self._network, ports=published, networking_config={
                self._network: EndpointConfig(client.api.api_version, aliases=[alias])})
        if definition.entrypoint is not None:
            options["entrypoint"] = definition.entrypoint
        if definition.healthcheck is not None:
            options["healthcheck"] = definition.healthcheck
        if user is not None:
            options["user"] = user
        if volumes:
            options["volumes"] = volumes
        if memory:
            options.update(memory)
        if sysctls:
            options["sysctls"] = sysctls
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

    # -- for faults and tests --------------------------------------------------------
    def container(self, component: str) -> Container:
        """The container of a component of the running stack: ``toxiproxy``, ``envoy`` or a replica (``chat[0]``)."""
        if self._supervisor is not None and self._supervisor.supervises(component):
            return self._supervisor.container(component)  # a port change replaces the replica's container
        if component not in self._containers:
            raise StackError(f"no container for {component!r} in this run")
        return self._containers[component]

    @property
    def run_id(self) -> str | None:
        return self._run_id

    # -- down ------------------------------------------------------------------------
    def down(self) -> None:
        """Remove the run's containers, network and volumes (by label); idempotent, never raises."""
        if self._supervisor is not None:  # first, so nothing is restarted while the stack goes down
            self._supervisor.stop()
            self._supervisor = None
        if self._gateway_container is not None:
            self._gateway_container.close()
            self._gateway_container = None
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
        self._sandboxes = {}
