"""The dns fault on a docker stack: the same live checks as on local (test_dns_fault_live.py), run
against DockerRuntime, whose gateway pod puts Envoy and the fake DNS server in Toxiproxy's network
namespace so the names answer 127.0.0.1 as on local; plus what only docker has to prove: the pod."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from harness.runtimes.base import Stack
from harness.runtimes.docker import DockerRuntime
from harness.scenario import Scenario, parse_scenario

from . import test_dns_fault_live as on_local
from .docker_helpers import docker_engine, leftovers

if TYPE_CHECKING:
    from docker import DockerClient

__all__ = ["docker_engine"]


@pytest.fixture(scope="module")
def pod(tmp_path_factory: pytest.TempPathFactory, docker_engine: DockerClient) -> Iterator[tuple[DockerRuntime, Stack]]:
    scenario: Scenario = parse_scenario(on_local.SCENARIO.replace("dns-live", "dns-docker"), "dns-docker.yaml")
    runtime = DockerRuntime(log=lambda message: None)
    run_dir = tmp_path_factory.mktemp("dns-docker") / "run"
    try:
        yield runtime, runtime.up(scenario, run_dir)
    finally:
        runtime.down()
    assert leftovers(docker_engine, run_dir) == [], "teardown removed the pod with the rest of the run"


@pytest.fixture(scope="module")
def stack(pod: tuple[DockerRuntime, Stack]) -> Stack:
    return pod[1]


@pytest.mark.integration
def test_envoy_and_the_fake_dns_server_share_toxiproxys_network_namespace(pod: tuple[DockerRuntime, Stack]) -> None:
    runtime, stack = pod
    toxiproxy = runtime.container("toxiproxy")
    for component in ("envoy", "dns"):
        container = runtime.container(component)
        container.reload()
        assert container.status == "running"
        assert container.attrs["HostConfig"]["NetworkMode"] == f"container:{toxiproxy.id}", component
    assert stack.dns is not None and stack.dns.address.startswith("127.0.0.1:")
    assert all(stack.gateway_address(replica).startswith("127.0.0.1:") for replica in stack.replicas)


@pytest.mark.integration
def test_docker_envoy_resolves_every_replica_through_the_fake_dns_server(stack: Stack) -> None:
    on_local.test_envoy_resolves_every_replica_through_the_fake_dns_server(stack)


@pytest.mark.integration
def test_docker_nxdomain_drops_the_host_and_the_name_resolving_again_restores_it(stack: Stack) -> None:
    on_local.test_nxdomain_drops_the_host_and_the_name_resolving_again_restores_it(stack)


@pytest.mark.integration
def test_docker_servfail_and_no_answer_keep_the_last_good_host(stack: Stack) -> None:
    on_local.test_servfail_and_no_answer_keep_the_last_good_host(stack)


@pytest.mark.integration
def test_docker_flip_moves_the_names_traffic_to_the_other_replica(stack: Stack) -> None:
    on_local.test_flip_moves_the_names_traffic_to_the_other_replica(stack)


@pytest.mark.integration
def test_docker_wrong_address_sends_clients_to_a_port_nobody_serves(stack: Stack) -> None:
    on_local.test_wrong_address_sends_clients_to_a_port_nobody_serves(stack)
