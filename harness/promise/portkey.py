"""Promised windows of the Portkey AI gateway: it never marks a replica unhealthy, so it promises no detection
and no recovery ("never"), whatever the fault.

The open-source gateway has no health checks and no circuit breaker (harness/gateways/portkey.py): each request
is load-balanced over the pool's targets as if every one were up, a request sent to a dead replica fails there
(after its retries, on the same target) and goes to the fallback pool on its own. What Portkey does promise is
per request: the fallback (harness/promise/fallback.py, ``portkey_fallback``) and each request's cost of a
dead target (``request_cost``): its tries, each as the fault ends it or cut at request_timeout, and the waits of
Portkey's backoff between them (1 s, 2 s, 4 s, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.faults import Fault
from harness.gateways.portkey import DEFAULT_RETRY_STATUSES, retry_waits, status_codes, try_limit
from harness.promise.effects import RequestEffect, request_effect
from harness.promise.load import LoadFacts
from harness.promise.window import Never, Promise
from harness.scenario import Scenario

NO_VIEW = "Portkey never marks a replica unhealthy: it has no health checks and no circuit breaker"


def detection_window(scenario: Scenario, fault: Fault, facts: LoadFacts | None = None) -> Promise:
    return Never(f"{NO_VIEW}; every request sent to the faulty replica pays for it")


def recovery_window(scenario: Scenario, fault: Fault, facts: LoadFacts | None = None,
                    after: str = "fault_end") -> Promise:
    return Never(f"{NO_VIEW}, so there is nothing to take back")


@dataclass(frozen=True)
class RequestCost:
    """What one request sent to the faulty target costs: ``tries`` tries of ``effect.takes`` each and ``waits``
    seconds of backoff between them, ``seconds`` in all; ``retried`` says whether Portkey retries the failure."""

    effect: RequestEffect
    tries: int
    waits: float
    retried: bool

    @property
    def seconds(self) -> float:
        return self.tries * self.effect.takes + self.waits

    @property
    def how(self) -> str:
        if not self.retried:
            return f"one try ({self.effect.why}: {self.effect.takes:g}s), not retried"
        return (f"{self.tries} tries on the same target ({self.effect.why}: {self.effect.takes:g}s each) and "
                f"{self.waits:g}s of Portkey's backoff between them")


def request_cost(scenario: Scenario, fault: Fault) -> RequestCost:
    """How a request the load balancer sends to the fault's replica ends (``effect``) and what it costs.
    Portkey retries (retry.attempts) a connection error always, a status only in on_status_codes, and never its own
    408 of a try cut at request_timeout (measured, docs/gateways.md)."""
    g = scenario.gateway
    limit = try_limit(g)
    effect = request_effect(fault, limit)
    attempts = g.retries.num_retries if g.retries is not None else 0
    codes = status_codes(list(g.retries.retry_on)) if g.retries is not None else list(DEFAULT_RETRY_STATUSES)
    if effect.kind == "local":
        retried = not (limit > 0 and effect.takes >= limit)  # a cut try is Portkey's own 408, not retried
    elif effect.kind == "status":
        retried = effect.status in codes
    else:
        retried = False
    if attempts == 0 or not retried:
        return RequestCost(effect, 1, 0.0, False)
    return RequestCost(effect, 1 + attempts, retry_waits(attempts), True)
