"""Runs inside the LiteLLM proxy: a read-only view of its router's own health state.

The proxy has no endpoint that lists the deployments its router currently skips (cooldowns
live in the router's in-memory cache; ``/health`` makes a fresh model call per deployment).
This module is loaded by the proxy through its documented custom-callback hook
(``litellm_settings.callbacks``); on import it adds one route to the proxy's own app::

    GET /chaosgate/deployments  ->  {"now": <unix time>, "health_check_round": int|null, "deployments": [
        {"id", "model_name", "api_base", "cooldown": bool, "cooldown_until": float|null,
         "cooldown_status": str|null, "health_check": "healthy"|"unhealthy"|null,
         "health_error": str|null}, ...]}

``cooldown`` is read with the same router call that filters deployments for every request
(``async_get_cooldown_deployments``); ``health_check`` is the background health checks'
verdict as cached for health-check routing; ``health_check_round`` is the number of the background
round last started (LiteLLM's own counter: rounds are timed from it, docs/gateways.md). A second route
gives every background round the proxy ran, stamped by the proxy itself::

    GET /chaosgate/health_rounds  ->  {"interval": int|null, "rounds": [
        {"round": int, "started": <unix time>, "written": <unix time>|null}, ...]}

``started``: its checks began (LiteLLM's ``_run_direct_health_check_with_instrumentation`` was called);
``written``: its verdicts were in the routing cache (``_write_health_state_to_router_cache`` returned);
null while the round is under way. The harness copies this file beside the proxy's config.yaml (so it
imports nothing from the harness) and the proxy imports it from there.

Each change of a deployment's health as the router acts on it (healthy = not in cooldown and, with
health-check routing, its last verdict not unhealthy: ``host_health_of`` in litellm.py) is appended as one
JSON line to ``litellm-health.jsonl`` beside this file, stamped with the proxy's own time of the change::

    {"ts": <unix time>, "id", "address": "<host:port of api_base>", "healthy": bool, "what": str}

The times are LiteLLM's own: a cooldown begins at its entry's ``timestamp`` (the router's clock when it
cooled the deployment down) and ends at ``timestamp + cooldown_time`` (the router's own test of whether it is
still active) or when its in-memory entry expires, whichever is first: the entry's time to live is set at the
first write of a cooldown and not pushed back by later writes (a failed health-check round cools an unhealthy
deployment down again, moving ``timestamp`` but not the expiry; measured, LiteLLM 1.108.7), so a cooldown
written again ends at the first write + ``cooldown_time``, and began there too; a verdict takes effect when a round's verdicts are written to the routing cache (the round's
``written``); an unhealthy verdict goes stale at its own ``timestamp`` + ``health_check_staleness_threshold``.
Changes are found where the state can change: after each write of verdicts, and at each
``GET /chaosgate/deployments`` (a cooldown's start or end is seen there; the harness asks at 20 Hz). A
change no such time explains is not written (the harness keeps its poll's time for it).
"""

from __future__ import annotations

import gc
import json
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from litellm.integrations.custom_logger import CustomLogger


UPSTREAM_HEADER = "x-chaosgate-upstream"
REPLICA_HEADER = "x-chaosgate-replica"
COLLECT_EVERY_S = 1.0
MAX_ROUNDS = 10_000  # a round every interval (1 s at the least): hours of rounds
ROUNDS: list[dict[str, Any]] = []  # every background round: round, started, written (see the module's doc)
HEALTH_LOG = Path(__file__).with_name("litellm-health.jsonl")  # each change of a deployment's health (module doc)


def _collect_garbage_between_updates() -> None:
    """Work around a crash of CPython 3.11 (SIGSEGV in hamt_node_bitmap_assoc, gh-148891): a cyclic
    garbage collection that starts *inside* a contextvar update runs finalisers that update a contextvar
    again and free data still in use. LiteLLM sets contextvars around every cache call, also in
    coroutines the collector closes, and the proxy died of it in about 1 run in 17 (docs/gateways.md).
    Automatic collection (which starts at any allocation, such as one inside a contextvar update) is
    turned off; a thread collects every COLLECT_EVERY_S instead, and it can only run between two
    bytecodes of the event loop's thread, never inside a contextvar update (C code that holds the GIL).
    The ~700,000 objects of the proxy's start-up are frozen first (a full collection of them takes
    0.35 s here), so each collection only looks at what the run allocated."""
    gc.disable()
    gc.freeze()

    def collect_forever() -> None:
        while True:
            time.sleep(COLLECT_EVERY_S)
            gc.collect()

    threading.Thread(target=collect_forever, name="chaosgate-gc", daemon=True).start()


class ChaosgateProbe(CustomLogger):
    """A callback that logs nothing. It stamps every response (LiteLLM's error replies too) with
    the address of the deployment the router picked, and passes the replica's own identity header
    on under its own name (LiteLLM renames upstream headers ``llm_provider-<name>``)."""

    async def async_post_call_response_headers_hook(self, data: dict[str, Any], user_api_key_dict: Any,
                                                    response: Any, request_headers: Any = None,
                                                    litellm_call_info: dict[str, Any] | None = None,
                                                    ) -> dict[str, str] | None:
        headers: dict[str, str] = {}
        info = litellm_call_info or {}
        api_base = str(info.get("api_base") or _api_base_of(info.get("model_id") or
                                                            (info.get("model_info") or {}).get("id")))
        if api_base:
            headers[UPSTREAM_HEADER] = urlsplit(api_base).netloc
        hidden = getattr(response, "_hidden_params", None) or {}
        replica = (hidden.get("additional_headers") or {}).get(f"llm_provider-{REPLICA_HEADER}")
        if replica:
            headers[REPLICA_HEADER] = str(replica)
        return headers or None


def _api_base_of(model_id: Any) -> str:
    """The api_base of the deployment ``model_id`` (a failed call's reply carries only its id)."""
    from litellm.proxy import proxy_server

    router = proxy_server.llm_router
    if router is None or model_id is None:
        return ""
    for deployment in router.model_list:
        if str(deployment["model_info"]["id"]) == str(model_id):
            return str(deployment.get("litellm_params", {}).get("api_base") or "")
    return ""


def _error_text(error: object) -> str:
    """A failed health check's error as one line, without the stack trace LiteLLM appends to it."""
    return " ".join(str(error).split("stack trace:")[0].split())[:300]


class HealthLog:
    """Each deployment's health as the router acts on it, and the proxy's own time of each change of it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self.healthy: dict[str, bool] = {}           # model id -> as last written (no entry: healthy, unchecked)
        self.cooled: dict[str, tuple[float, float]] = {}  # model id -> (start, end) of the last cooldown seen
        self.bad_verdict: dict[str, float] = {}      # model id -> when its unhealthy verdict took effect
        self.verdict_ended: dict[str, float] = {}    # model id -> when its last unhealthy verdict stopped counting
        self.failed = False

    def observe(self, written: float | None = None) -> None:
        """Compare the router's state now with the last one written; ``written``: the time this round's verdicts
        were written (called right after the write), else None (a cooldown's start or end, a verdict gone stale).
        Never raises: it runs inside LiteLLM's health-check loop and the harness's route; a failure is said once
        on the proxy's stderr (its log), and the harness keeps its polls' times."""
        try:
            self._observe(written)
        except Exception as exc:  # noqa: BLE001 - whatever a LiteLLM version changed, the proxy must go on
            if not self.failed:
                self.failed = True
                print(f"chaosgate probe: cannot stamp health changes in {self.path}: {exc!r}", file=sys.stderr)

    def _observe(self, written: float | None) -> None:
        from litellm.proxy import proxy_server

        router = proxy_server.llm_router
        if router is None:
            return
        # read synchronously, with no await in between: one moment of the router's state (``now`` after the
        # cooldowns: one the router found ended had ended by then)
        cooldowns = dict(router.cooldown_cache.get_active_cooldowns(model_ids=router.get_model_ids(),
                                                                    parent_otel_span=None))
        now = time.time()
        # when the router's in-memory cooldown entry expires (its own clock): set once, at the first of a cooldown's
        # writes, and not pushed back by later ones (which do move the entry's ``timestamp``)
        expiries = getattr(getattr(router.cooldown_cache, "in_memory_cache", None), "ttl_dict", None) or {}
        states: dict[str, Any] = {}
        staleness = 0.0
        if getattr(router, "enable_health_check_routing", False):
            cache = router.health_state_cache
            raw = cache.cache.get_cache(key=cache.CACHE_KEY)
            states = raw if isinstance(raw, dict) else {}
            staleness = float(cache.staleness_threshold)
        for deployment in router.model_list:
            model_id = str(deployment["model_info"]["id"])
            expiry = expiries.get(router.cooldown_cache.get_cooldown_cache_key(model_id))
            self._observe_one(model_id, str(deployment.get("litellm_params", {}).get("api_base") or ""),
                              cooldowns.get(model_id), expiry, states.get(model_id), staleness, now, written)

    def _observe_one(self, model_id: str, api_base: str, cooldown: Any, expiry: Any, state: Any, staleness: float,
                     now: float, written: float | None) -> None:
        if cooldown is not None:  # it ends when the router's own test says so (timestamp + cooldown_time) or its
            # in-memory entry expires, whichever is first; it began at the first of its writes
            start, length = float(cooldown["timestamp"]), float(cooldown["cooldown_time"])
            end = min(start + length, float(expiry)) if isinstance(expiry, int | float) else start + length
            self.cooled[model_id] = (min(start, end - length), end)
        verdict_bad = isinstance(state, dict) and not state.get("is_healthy", True) and \
            now - float(state.get("timestamp", 0)) < staleness
        if verdict_bad and model_id not in self.bad_verdict:
            if written is None:  # an unhealthy verdict appears only at a write, which is observed right after it
                return
            self.bad_verdict[model_id] = written
            self.verdict_ended.pop(model_id, None)
        elif not verdict_bad and model_id in self.bad_verdict:
            del self.bad_verdict[model_id]
            stale = isinstance(state, dict) and not state.get("is_healthy", True)
            if written is not None and not stale:
                self.verdict_ended[model_id] = written
            elif isinstance(state, dict):  # gone stale: at LiteLLM's own timestamp plus the threshold
                self.verdict_ended[model_id] = float(state.get("timestamp", 0)) + staleness
        healthy = cooldown is None and not verdict_bad
        if healthy is self.healthy.get(model_id, True):
            return
        self.healthy[model_id] = healthy
        if not healthy:  # it was healthy when last seen: whatever holds it out now began since; the first did it
            causes = [(self.cooled[model_id][0], f"cooldown({cooldown.get('status_code')})")] if cooldown else []
            if verdict_bad:
                causes.append((self.bad_verdict[model_id], "health_check_failed"))
            ts, what = min(causes)
        else:  # whatever held it out has ended since it was last seen: the last end readmitted it
            ends = []
            if model_id in self.cooled and self.cooled[model_id][1] <= now:
                ends.append((self.cooled[model_id][1], "cooldown ended"))
            if model_id in self.verdict_ended:
                ends.append((self.verdict_ended[model_id], "health check passed"))
            if not ends:
                return
            ts, what = max(ends)
        self._write({"ts": ts, "id": model_id, "address": urlsplit(api_base).netloc, "healthy": healthy,
                     "what": what})

    def _write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            self._file = self.path.open("a", buffering=1)  # a line at a time: the harness tails it during the run
        self._file.write(json.dumps(record) + "\n")


HEALTH = HealthLog(HEALTH_LOG)


async def deployments() -> dict[str, Any]:
    from litellm.proxy import proxy_server
    from litellm.router_utils.cooldown_handlers import async_get_cooldown_deployments_with_debug_info

    router = proxy_server.llm_router
    if router is None:
        return {"now": time.time(), "deployments": []}
    cooldowns = {model_id: value for model_id, value in
                 await async_get_cooldown_deployments_with_debug_info(router, parent_otel_span=None)}
    unhealthy: set[str] = set()
    checked: set[str] = set()
    errors: dict[str, str] = {}  # model id -> the error of its latest failed health check, as the proxy kept it
    if getattr(router, "enable_health_check_routing", False):
        unhealthy = set(await router.health_state_cache.async_get_unhealthy_deployment_ids())
        results = getattr(proxy_server, "health_check_results", {}) or {}
        for key in ("healthy_endpoints", "unhealthy_endpoints"):
            checked |= {str(e.get("model_id")) for e in results.get(key, []) if isinstance(e, dict)}
        errors = {str(e.get("model_id")): _error_text(e["error"])
                  for e in results.get("unhealthy_endpoints", []) if isinstance(e, dict) and e.get("error")}
    listed = []
    for deployment in router.model_list:
        model_id = str(deployment["model_info"]["id"])
        cooldown = cooldowns.get(model_id)
        health = None
        if model_id in unhealthy:
            health = "unhealthy"
        elif model_id in checked:
            health = "healthy"
        listed.append({
            "id": model_id,
            "model_name": deployment.get("model_name"),
            "api_base": deployment.get("litellm_params", {}).get("api_base"),
            "cooldown": cooldown is not None,
            "cooldown_until": (cooldown["timestamp"] + cooldown["cooldown_time"]) if cooldown else None,
            "cooldown_status": str(cooldown.get("exception_status")) if cooldown else None,
            "health_check": health,
            "health_error": errors.get(model_id) if health == "unhealthy" else None,
        })
    HEALTH.observe()
    return {"now": time.time(), "health_check_round": getattr(proxy_server, "background_health_check_cycle_seq", None),
            "gc": {"automatic": gc.isenabled(), "collections": sum(g["collections"] for g in gc.get_stats())},
            "deployments": listed}


async def health_rounds() -> dict[str, Any]:
    from litellm.proxy import proxy_server

    return {"interval": getattr(proxy_server, "health_check_interval", None), "rounds": list(ROUNDS)}


def _stamp_rounds() -> None:
    """Stamp each background round where LiteLLM 1.108.7's loop (``_run_background_health_check``) calls two
    module functions by name: the checks (``_run_direct_health_check_with_instrumentation``, awaited) and the
    write of their verdicts to the routing cache (``_write_health_state_to_router_cache``, synchronous)."""
    from litellm.proxy import proxy_server

    run_checks = getattr(proxy_server, "_run_direct_health_check_with_instrumentation", None)
    write = getattr(proxy_server, "_write_health_state_to_router_cache", None)
    if run_checks is None or write is None or getattr(run_checks, "chaosgate_stamped", False):
        return

    async def stamped_checks(*args: Any, **kwargs: Any) -> Any:
        if len(ROUNDS) < MAX_ROUNDS:
            ROUNDS.append({"round": getattr(proxy_server, "background_health_check_cycle_seq", None),
                           "started": time.time(), "written": None})
        return await run_checks(*args, **kwargs)

    def stamped_write(*args: Any, **kwargs: Any) -> Any:
        try:
            return write(*args, **kwargs)
        finally:
            written = time.time()
            if ROUNDS and ROUNDS[-1]["written"] is None:
                ROUNDS[-1]["written"] = written
            HEALTH.observe(written)

    stamped_checks.chaosgate_stamped = True  # type: ignore[attr-defined]
    proxy_server._run_direct_health_check_with_instrumentation = stamped_checks
    proxy_server._write_health_state_to_router_cache = stamped_write


def _register() -> None:
    from litellm.proxy import proxy_server

    if not any(getattr(route, "path", None) == "/chaosgate/deployments" for route in proxy_server.app.routes):
        proxy_server.app.add_api_route("/chaosgate/deployments", deployments, methods=["GET"])
        proxy_server.app.add_api_route("/chaosgate/health_rounds", health_rounds, methods=["GET"])
    _stamp_rounds()


_collect_garbage_between_updates()
_register()
probe = ChaosgateProbe()
