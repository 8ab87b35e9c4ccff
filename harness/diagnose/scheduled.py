"""Diagnoses a run schedules (``diagnosis`` expectations): each runs in its own thread at its time,
so the fault schedule never waits for probes, and journals what it named."""

from __future__ import annotations

import threading
from typing import Any, Protocol

from harness.diagnose.base import ProbeSettings, is_loopback
from harness.diagnose.envoy_source import DiagnoseError, from_admin
from harness.diagnose.walk import diagnose_address

JOIN_TIMEOUT_S = 20.0  # a diagnosis is bounded by its probes' timeouts (a few seconds); this is a backstop


class Journal(Protocol):
    def write(self, type: Any, ts: float | None = None, **fields: Any) -> dict[str, Any]:
        """Append one event."""


class DiagnosedStack(Protocol):
    """What a scheduled diagnosis needs of a running stack (harness.runtimes.base.Stack)."""

    @property
    def gateway(self) -> Any: ...

    def gateway_address(self, replica: str) -> str: ...

    @property
    def replicas(self) -> dict[str, Any]: ...


def replica_aliases(stack: DiagnosedStack, replica: str) -> tuple[str, ...]:
    """``name:port`` of a replica the gateway resolves by name (its address may change under a DNS fault)."""
    dns = getattr(stack, "dns", None)
    if dns is None or replica not in dns.names:
        return ()
    port = stack.gateway_address(replica).rsplit(":", 1)[1]
    return (f"{dns.names[replica]}:{port}",)


def _host_route(stack: DiagnosedStack, replica: str) -> tuple[str, int] | None:
    """Where this host reaches the replica's proxy when the gateway's address for it is not loopback
    (the docker runtime: the gateway dials the proxy on the run's network; the host, on a published port)."""
    if is_loopback(stack.gateway_address(replica).rsplit(":", 1)[0].strip("[]")):
        return None
    port = getattr(stack.replicas.get(replica), "proxy_port", None)
    return ("127.0.0.1", int(port)) if port else None


def diagnose_replica(stack: DiagnosedStack, replica: str, key: str, journal: Journal,
                     settings: ProbeSettings | None = None) -> None:
    """Diagnose ``replica`` through the gateway's admin view and journal a ``diagnosis`` event."""
    admin = getattr(stack.gateway, "admin_url", None)
    fields: dict[str, Any] = {"replica": replica, "key": key}
    if getattr(stack.gateway, "kind", "envoy") != "envoy" or not admin:
        journal.write("diagnosis", **fields, cause=None, layer=None, evidence="",
                      error=f"diagnose reads Envoy's admin API; the {getattr(stack.gateway, 'kind', '?')} gateway has none")
        return
    kinds = {r.pool: r.kind for r in stack.replicas.values()}
    try:
        view = from_admin(str(admin), kinds)
        result = diagnose_address(view, stack.gateway_address(replica), settings, aliases=replica_aliases(stack, replica),
                                  via=_host_route(stack, replica))
    except (DiagnoseError, KeyError) as exc:
        journal.write("diagnosis", **fields, cause=None, layer=None, evidence="", error=str(exc))
        return
    failure = result.failure
    journal.write("diagnosis", **fields, cause=result.cause, layer=failure.layer if failure else None,
                  evidence=result.evidence, verdict=result.verdict, gateway_healthy=result.gateway_healthy,
                  flags=list(result.flags), seconds=round(result.seconds, 3),
                  layers=[r.to_json() for r in result.layers])


def start_diagnosis(stack: DiagnosedStack, replica: str, key: str, journal: Journal) -> threading.Thread:
    """Diagnose in the background; the caller joins the thread (``join_all``) before teardown."""
    thread = threading.Thread(target=diagnose_replica, args=(stack, replica, key, journal),
                              name=f"diagnose-{replica}", daemon=True)
    thread.start()
    return thread


def join_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(JOIN_TIMEOUT_S)
