"""The LiteLLM probe's log of each change of a deployment's health, stamped with the proxy's own times
(harness/gateways/litellm_probe.py ``HealthLog``), and the adapter's reading of it. The probe runs inside the
proxy; here it is loaded against a stand-in of the proxy module with a router whose state the test sets."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.gateways.litellm import HEALTH_EVENT_LOG, PROBE_SOURCE, LitellmGateway
from harness.timeline import build_timeline

CACHE_KEY = "litellm:health_check:deployment_health_state"


@dataclass
class Router:
    """What the probe reads of LiteLLM's router: its cooldowns and its health-check verdicts."""

    cooldowns: dict[str, dict[str, Any]] = field(default_factory=dict)
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    staleness_threshold: float = 600.0
    enable_health_check_routing: bool = True
    model_list: list[dict[str, Any]] = field(default_factory=lambda: [
        {"model_name": "fake-model", "model_info": {"id": f"chat-{i}"},
         "litellm_params": {"api_base": f"http://127.0.0.1:{21000 + i}/v1"}} for i in range(2)])

    def __post_init__(self) -> None:
        self.expiries: dict[str, float] = {}  # the in-memory cooldown entries' expiry times, by cache key
        self.cooldown_cache = types.SimpleNamespace(
            get_active_cooldowns=self._active_cooldowns, in_memory_cache=types.SimpleNamespace(ttl_dict=self.expiries),
            get_cooldown_cache_key=lambda model_id: f"deployment:{model_id}:cooldown")
        self.health_state_cache = types.SimpleNamespace(
            CACHE_KEY=CACHE_KEY, staleness_threshold=self.staleness_threshold,
            cache=types.SimpleNamespace(get_cache=lambda key: dict(self.verdicts) if key == CACHE_KEY else None))

    def get_model_ids(self) -> list[str]:
        return [str(d["model_info"]["id"]) for d in self.model_list]

    def _active_cooldowns(self, model_ids: list[str], parent_otel_span: Any) -> list[tuple[str, dict[str, Any]]]:
        return [(i, self.cooldowns[i]) for i in model_ids if i in self.cooldowns]


class Inert:
    """A thread that never runs (the probe's garbage collector: not in the test's own process)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def start(self) -> None:
        pass


@pytest.fixture
def proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    """The proxy module as the probe sees it, with the probe loaded from beside a run's config (as the proxy
    loads it): ``proxy.probe`` is the probe module, ``proxy.llm_router`` the router."""
    import gc

    proxy_server = types.ModuleType("litellm.proxy.proxy_server")
    proxy_server.llm_router = Router()  # type: ignore[attr-defined]
    proxy_server.app = types.SimpleNamespace(routes=[], add_api_route=lambda *a, **k: None)  # type: ignore[attr-defined]

    async def run_checks(*args: Any, **kwargs: Any) -> Any:
        return [], [], {}

    def write(verdicts: dict[str, bool]) -> None:  # LiteLLM's write of a round's verdicts (at its own time)
        now = time.time()
        proxy_server.llm_router.verdicts.update(  # type: ignore[attr-defined]
            {i: {"is_healthy": ok, "timestamp": now, "reason": ""} for i, ok in verdicts.items()})

    proxy_server._run_direct_health_check_with_instrumentation = run_checks  # type: ignore[attr-defined]
    proxy_server._write_health_state_to_router_cache = write  # type: ignore[attr-defined]
    litellm = types.ModuleType("litellm")
    proxy_package = types.ModuleType("litellm.proxy")
    proxy_package.proxy_server = proxy_server  # type: ignore[attr-defined]
    custom_logger = types.ModuleType("litellm.integrations.custom_logger")
    custom_logger.CustomLogger = type("CustomLogger", (), {})  # type: ignore[attr-defined]
    for name, module in {"litellm": litellm, "litellm.proxy": proxy_package, "litellm.proxy.proxy_server": proxy_server,
                         "litellm.integrations": types.ModuleType("litellm.integrations"),
                         "litellm.integrations.custom_logger": custom_logger}.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(threading, "Thread", Inert)
    monkeypatch.setattr(gc, "disable", lambda: None)
    monkeypatch.setattr(gc, "freeze", lambda: None)
    (tmp_path / "chaosgate_litellm_probe.py").write_text(PROBE_SOURCE.read_text())
    spec = importlib.util.spec_from_file_location("chaosgate_litellm_probe", tmp_path / "chaosgate_litellm_probe.py")
    assert spec is not None and spec.loader is not None
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    proxy_server.probe = probe  # type: ignore[attr-defined]
    yield proxy_server


def lines(run_dir: Path) -> list[dict[str, Any]]:
    log = run_dir / HEALTH_EVENT_LOG
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_a_cooldown_is_stamped_with_the_routers_own_start_and_end(proxy: Any, tmp_path: Path) -> None:
    router, health = proxy.llm_router, proxy.probe.HEALTH
    health.observe()
    assert lines(tmp_path) == []  # every deployment healthy: nothing changed
    router.cooldowns["chat-1"] = {"timestamp": 1000.25, "cooldown_time": 5.0, "status_code": "500"}
    health.observe()
    health.observe()  # seen again: no change
    del router.cooldowns["chat-1"]  # the router found it ended
    health.observe()
    assert lines(tmp_path) == [
        {"ts": 1000.25, "id": "chat-1", "address": "127.0.0.1:21001", "healthy": False, "what": "cooldown(500)"},
        {"ts": 1005.25, "id": "chat-1", "address": "127.0.0.1:21001", "healthy": True, "what": "cooldown ended"}]


def test_a_cooldown_written_again_ends_when_its_first_writes_entry_expires(proxy: Any, tmp_path: Path) -> None:
    # LiteLLM 1.108.7: each failed check round cools an unhealthy deployment down again; the entry's timestamp
    # moves, its in-memory time to live (set at the first write) does not, and the entry is gone at that expiry
    router, health = proxy.llm_router, proxy.probe.HEALTH
    router.expiries["deployment:chat-0:cooldown"] = 1010.0
    router.cooldowns["chat-0"] = {"timestamp": 1000.0, "cooldown_time": 10.0, "status_code": "500"}
    health.observe()
    router.cooldowns["chat-0"] = {"timestamp": 1004.0, "cooldown_time": 10.0, "status_code": "500"}  # written again
    health.observe()
    del router.cooldowns["chat-0"], router.expiries["deployment:chat-0:cooldown"]
    health.observe()
    assert [(r["ts"], r["healthy"], r["what"]) for r in lines(tmp_path)] == [
        (1000.0, False, "cooldown(500)"), (1010.0, True, "cooldown ended")]


def test_a_cooldown_first_seen_after_a_second_write_began_at_the_first(proxy: Any, tmp_path: Path) -> None:
    router = proxy.llm_router
    router.expiries["deployment:chat-0:cooldown"] = 1010.0
    router.cooldowns["chat-0"] = {"timestamp": 1004.0, "cooldown_time": 10.0, "status_code": "500"}
    proxy.probe.HEALTH.observe()
    assert [(r["ts"], r["healthy"]) for r in lines(tmp_path)] == [(1000.0, False)]


def test_a_verdict_is_stamped_when_its_round_was_written_to_the_routing_cache(proxy: Any, tmp_path: Path) -> None:
    before = time.time()
    proxy._write_health_state_to_router_cache({"chat-0": False, "chat-1": True})  # the probe's wrapper of it
    between = time.time()
    proxy._write_health_state_to_router_cache({"chat-0": True, "chat-1": True})
    after = time.time()
    (down, up) = lines(tmp_path)
    assert (down["id"], down["healthy"], down["what"], up["id"], up["healthy"], up["what"]) == \
        ("chat-0", False, "health_check_failed", "chat-0", True, "health check passed")
    assert before <= down["ts"] <= between <= up["ts"] <= after


def test_a_deployment_held_out_twice_comes_back_when_the_last_hold_ends(proxy: Any, tmp_path: Path) -> None:
    router, health = proxy.llm_router, proxy.probe.HEALTH
    router.cooldowns["chat-0"] = {"timestamp": 1000.0, "cooldown_time": 2.0, "status_code": "503"}
    health.observe()
    proxy._write_health_state_to_router_cache({"chat-0": False})  # then its check failed too
    del router.cooldowns["chat-0"]
    health.observe()  # the cooldown ended, the failed verdict still holds it out
    written = time.time()
    proxy._write_health_state_to_router_cache({"chat-0": True})
    assert [(r["healthy"], r["what"]) for r in lines(tmp_path)] == [(False, "cooldown(503)"),
                                                                     (True, "health check passed")]
    assert lines(tmp_path)[0]["ts"] == 1000.0 and lines(tmp_path)[1]["ts"] >= written


def test_a_failed_verdict_gone_stale_ends_at_its_own_timestamp_plus_the_threshold(proxy: Any, tmp_path: Path) -> None:
    router, health = proxy.llm_router, proxy.probe.HEALTH
    proxy._write_health_state_to_router_cache({"chat-0": False})
    stamped_at = router.verdicts["chat-0"]["timestamp"]
    router.health_state_cache.staleness_threshold = 0.0  # LiteLLM now ignores it (its staleness threshold)
    health.observe()
    assert [(r["ts"], r["healthy"]) for r in lines(tmp_path)][1:] == [(stamped_at, True)]


def test_a_change_no_time_of_the_proxys_explains_is_not_written(proxy: Any, tmp_path: Path) -> None:
    # a failed verdict that did not come through the write the probe wraps (another LiteLLM version): no stamp
    proxy.llm_router.verdicts["chat-0"] = {"is_healthy": False, "timestamp": time.time(), "reason": ""}
    proxy.probe.HEALTH.observe()
    assert lines(tmp_path) == []


def test_the_probe_never_fails_the_proxy_when_it_cannot_stamp(proxy: Any, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    proxy.llm_router.cooldown_cache = None  # a LiteLLM whose router has changed
    proxy._write_health_state_to_router_cache({"chat-0": False})  # LiteLLM's loop goes on
    proxy.probe.HEALTH.observe()
    err = capsys.readouterr().err
    assert err.count("chaosgate probe: cannot stamp health changes in") == 1, err
    assert lines(tmp_path) == []


def test_the_adapter_reads_the_probes_lines() -> None:
    line = {"ts": 1000.25, "id": "chat-1", "address": "127.0.0.1:21001", "healthy": False, "what": "cooldown(500)"}
    assert LitellmGateway.parse_health_event(line) == [
        {"ts": 1000.25, "address": "127.0.0.1:21001", "healthy": False, "what": "cooldown(500)"}]
    assert LitellmGateway.parse_health_event({**line, "ts": True}) == []
    assert LitellmGateway.parse_health_event({**line, "healthy": "no"}) == []
    assert LitellmGateway.parse_health_event({"line": "not the probe's"}) == []
    assert LitellmGateway.health_event_logs(Path("/run")) == [(Path("/run") / HEALTH_EVENT_LOG, False)]


def test_a_polled_litellm_change_moves_to_the_proxys_stamp() -> None:
    events: list[dict[str, Any]] = [
        {"type": "run.started", "ts": 100.0, "replicas": ["chat[0]"]},
        {"type": "load.started", "ts": 101.0},
        {"type": "health", "ts": 101.0, "replica": "chat[0]", "healthy": True, "flags": "healthy", "answered": 101.002},
        *LitellmGateway.parse_health_event({"ts": 104.991, "address": "127.0.0.1:21000", "healthy": False,
                                            "what": "health_check_failed"}),
        {"type": "health", "ts": 105.02, "replica": "chat[0]", "healthy": False, "flags": "health_check_failed",
         "answered": 105.024},
    ]
    for event in events:
        event.setdefault("type", "gateway.health")
        event.setdefault("replica", "chat[0]")
    change = build_timeline(events).health["chat[0]"][1]
    assert (change.t, change.polled, change.stamped_by) == (pytest.approx(3.991), pytest.approx(4.02),
                                                            "health_check_failed")
