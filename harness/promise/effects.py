"""What a fault does to a gateway's health check and to a client request, gateway-independent.

The promise formulas need two facts per fault: how a failing health check concludes (at once,
after the check's timeout, with a bad status, or not at all) and how a failing request
concludes (a local-origin error, a 5xx from the replica, a timeout, or not at all), each with
the time ``d`` it takes. Faults whose effect is probabilistic (``toxicity`` or ``rate`` below
1) or not modelled give ``unknown`` with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.faults import Fault

CheckKind = Literal["network", "timeout", "status", "passes", "unknown"]
RequestKind = Literal["local", "status", "ok", "hangs", "unknown"]
DEEP_HEALTH_PATH = "/health/deep"
# The fault kinds whose effect on checks and requests is modelled below; any other kind (DNS,
# MCP protocol drift, bandwidth, slicing, ...) gets no promise at all rather than a wrong one.
MODELLED_KINDS = frozenset({"down", "process_kill", "port_change", "cert", "reset_peer", "timeout",
                            "process_freeze", "latency", "llm_fault"})
# Faults that restart the replica's process: it is back when the restart is ready, whenever that is.
RESTARTING_KINDS = frozenset({"process_kill", "oom", "port_change", "process_restart"})
HEALTH_PATHS = ("/health", DEEP_HEALTH_PATH)
# The status of each llm_fault openai_error (fakes/openai_errors.py): both 429s look alike to a gateway's router.
OPENAI_ERROR_STATUS = {"rate_limit_exceeded": 429, "insufficient_quota": 429, "server_error": 500, "overloaded": 503}


@dataclass(frozen=True)
class CheckEffect:
    """How one health check of a faulty replica ends: ``network`` (refused, reset, closed or a
    failed TLS handshake after ``takes`` seconds), ``timeout`` (no answer within the check's
    timeout, ``takes`` = that timeout), ``status`` (an answer with an unexpected status), or
    ``passes`` (the check does not see the fault)."""

    kind: CheckKind
    takes: float = 0.0
    why: str = ""
    status: int | None = None


@dataclass(frozen=True)
class RequestEffect:
    """How one client request to a faulty replica ends: ``local`` (a connection error or a
    timeout seen by the gateway itself: 503/504 locally generated), ``status`` (the replica
    answers ``status``), ``ok`` (it succeeds, perhaps slowly), ``hangs`` (nothing ends it)."""

    kind: RequestKind
    takes: float = 0.0
    why: str = ""
    status: int | None = None


def check_effect(fault: Fault, path: str, timeout: float, expected_statuses: list[int]) -> CheckEffect:
    """What the fault does to an HTTP health check of ``path`` with ``timeout``."""
    kind = fault.kind
    if (toxicity := getattr(fault, "toxicity", 1.0)) < 1.0:
        return CheckEffect("unknown", why=f"toxicity {toxicity:g} hits only some checks")
    if kind in ("down", "process_kill", "port_change"):
        return CheckEffect("network", 0.0, "the check's connection is refused or closed at once")
    if kind == "cert":
        return CheckEffect("network", 0.0, "the check's TLS handshake fails")
    if kind == "reset_peer":
        after = float(getattr(fault, "timeout", 0.0))
        if after < timeout:
            return CheckEffect("network", after, f"the check's connection is reset after {after:g}s")
        return CheckEffect("timeout", timeout, "the reset comes after the check's timeout")
    if kind == "timeout":
        after = float(getattr(fault, "timeout", 0.0))
        if 0 < after < timeout:
            return CheckEffect("network", after, f"the check's connection is closed after {after:g}s")
        return CheckEffect("timeout", timeout, "the check gets no answer and times out")
    if kind == "process_freeze":
        return CheckEffect("timeout", timeout, "a stopped process accepts the check's connection and never answers")
    if kind == "latency":
        delay, jitter = float(getattr(fault, "latency", 0.0)), float(getattr(fault, "jitter", 0.0))
        if delay - jitter >= timeout:
            return CheckEffect("timeout", timeout, f"a {delay:g}s delay exceeds the check's {timeout:g}s timeout")
        if delay + jitter < timeout:
            return CheckEffect("passes", why=f"a {delay:g}s delay stays under the check's {timeout:g}s timeout")
        return CheckEffect("unknown", why="the delay's jitter straddles the check's timeout")
    if kind == "llm_fault":
        return _llm_check(fault, path, timeout, expected_statuses)
    return CheckEffect("unknown", why=f"the effect of {kind} faults on health checks is not modelled")


def _llm_check(fault: Fault, path: str, timeout: float, expected: list[int]) -> CheckEffect:
    mode = str(getattr(fault, "mode", ""))
    if (rate := float(getattr(fault, "rate", 1.0))) < 1.0:
        return CheckEffect("unknown", why=f"rate {rate:g} hits only some checks")
    if path not in HEALTH_PATHS:
        return CheckEffect("unknown", why=f"the fake answers {path} with 404 whatever the mode")
    if mode == "health_fail":
        status = int(getattr(fault, "status", 503))
        if status in expected:
            return CheckEffect("passes", why=f"{status} is an expected status")
        return CheckEffect("status", 0.0, f"the health endpoint answers {status}", status)
    if path != DEEP_HEALTH_PATH:
        return CheckEffect("passes", why=f"{path} is the shallow check: inference faults do not reach it")
    if mode in ("error_status", "inference_fail"):
        return CheckEffect("status", 0.0, "the deep check runs inference, which fails: 503", 503)
    if mode == "hang_before_headers":
        return CheckEffect("timeout", timeout, "the deep check's inference never answers")
    if mode == "slow_ttft" and float(getattr(fault, "ttft", 0.0)) >= timeout:
        return CheckEffect("timeout", timeout, "the deep check's inference is slower than the check's timeout")
    return CheckEffect("unknown", why=f"the effect of llm_fault {mode} on {path} is not modelled")


def request_effect(fault: Fault, limit: float) -> RequestEffect:
    """What the fault does to a client request through a gateway that gives each try ``limit``
    seconds (0: no limit)."""
    kind = fault.kind
    if (toxicity := getattr(fault, "toxicity", 1.0)) < 1.0:
        return RequestEffect("unknown", why=f"toxicity {toxicity:g} hits only some requests")
    timed_out = RequestEffect("local", limit, f"the gateway gives up after {limit:g}s") if limit > 0 else \
        RequestEffect("hangs", why="no gateway timeout ends the request")
    if kind in ("down", "process_kill", "port_change", "cert"):
        return RequestEffect("local", 0.0, "the connection fails at once")
    if kind == "reset_peer":
        after = float(getattr(fault, "timeout", 0.0))
        return RequestEffect("local", after, f"the connection is reset after {after:g}s") \
            if limit <= 0 or after < limit else timed_out
    if kind == "timeout":
        after = float(getattr(fault, "timeout", 0.0))
        return RequestEffect("local", after, f"the connection is closed after {after:g}s") \
            if 0 < after and (limit <= 0 or after < limit) else timed_out
    if kind == "process_freeze":
        return timed_out
    if kind == "latency":
        delay, jitter = float(getattr(fault, "latency", 0.0)), float(getattr(fault, "jitter", 0.0))
        if limit > 0 and delay - jitter >= limit:
            return timed_out
        if limit <= 0 or delay + jitter < limit / 2:
            return RequestEffect("ok", why="requests are slower but succeed")
        return RequestEffect("unknown", why="the delay is close to the gateway's timeout")
    if kind == "llm_fault":
        mode = str(getattr(fault, "mode", ""))
        if (rate := float(getattr(fault, "rate", 1.0))) < 1.0:
            return RequestEffect("unknown", why=f"rate {rate:g} hits only some requests")
        if mode in ("error_status", "inference_fail"):
            status = int(getattr(fault, "status", 500))
            return RequestEffect("status", 0.0, f"the replica answers {status}", status)
        if mode == "health_fail":
            return RequestEffect("ok", why="inference keeps working")
        if mode == "openai_error":
            error = str(getattr(fault, "error", ""))
            if (answered := OPENAI_ERROR_STATUS.get(error)) is not None:
                return RequestEffect("status", 0.0, f"the replica answers {answered} {error}", answered)
        if mode == "hang_before_headers":
            return timed_out
        return RequestEffect("unknown", why=f"the effect of llm_fault {mode} on requests is not modelled")
    return RequestEffect("unknown", why=f"the effect of {kind} faults on requests is not modelled")
