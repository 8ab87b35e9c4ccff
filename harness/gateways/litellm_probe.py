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
"""

from __future__ import annotations

import gc
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from litellm.integrations.custom_logger import CustomLogger


UPSTREAM_HEADER = "x-chaosgate-upstream"
REPLICA_HEADER = "x-chaosgate-replica"
COLLECT_EVERY_S = 1.0
MAX_ROUNDS = 10_000  # a round every interval (1 s at the least): hours of rounds
ROUNDS: list[dict[str, Any]] = []  # every background round: round, started, written (see the module's doc)


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
            if ROUNDS and ROUNDS[-1]["written"] is None:
                ROUNDS[-1]["written"] = time.time()

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
