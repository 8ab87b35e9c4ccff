"""Nothing came back to a replica before the ``Retry-After`` it sent had passed.

A provider that answers 429 or 503 (Anthropic: 529) with ``Retry-After`` says when to come back. A gateway
that honours it keeps that deployment out (LiteLLM's cooldown) or waits before retrying; one that does not
hammers a provider that asked for rest, and the provider answers with more 429s. The fakes journal every
answer they send (``attempt.answer``: when its status line went out, and the seconds its ``retry-after-ms``,
else ``retry-after`` as seconds or as an HTTP date, asked for; fakes/identity.py); an answer without one
promises nothing. Every try of a client request that reached the same replica before that moment is early,
counted from when the gateway can have sent it: a try of another request the gateway sent before it can have
read the answer (sent before the answer went out, or less than READ_SLACK after) is not held against it; a
retry of the same request comes after the gateway read its answer, and counts however soon it came. When a try
was sent, the gateway's own stamp of it tells where it logs each try (Envoy, nginx); else the earliest it can
have been sent: its request's start, or for a retry the moment its previous try's answer went out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from harness.expectations.base import Expectation, Target, Unjudgeable, Verdict, replicas_of, seconds
from harness.expectations.no_traffic_to import SAME_TRY_SLACK
from harness.timeline import Answer, Attempt, Timeline

NAMED = 3  # early tries named in the detail
# The gateway reads an answer some moment after the fake sent it: a busy proxy (LiteLLM on a loaded 2-core machine)
# can take tens of milliseconds before its router knows of a 429. A try of another request sent within this of the
# answer going out may have been routed before the gateway read it.
READ_SLACK = 0.1


@dataclass(frozen=True)
class EarlyTry:
    """A try that reached a replica before the wait an earlier answer of it asked for was over."""

    attempt: Attempt
    answer: Answer     # the answer whose wait it broke (the one asking the longest, if several)

    def text(self) -> str:
        what = f"request {self.attempt.request_id}" if self.attempt.request_id else "a request"
        return (f"{what} reached {self.attempt.replica} at {seconds(self.attempt.t)}, "
                f"{seconds(self.attempt.t - self.answer.t)} after its {self.answer.status} asked for "
                f"{_wait(self.answer)}")


def _wait(answer: Answer) -> str:
    return f"{answer.retry_after:g}s" if answer.retry_after is not None else "nothing"


def earliest_sends(timeline: Timeline) -> dict[int, float]:
    """For each try a replica saw of a client request (by the attempt's id): the earliest moment the gateway can
    have sent it. Its own stamp where it logs each try; else its request's start, or later the arrival of the
    request's previous try, or the moment the answer to a previous try went out (a retry follows that answer)."""
    started = {r.id: r.t for r in timeline.requests if r.id is not None}
    gateway: dict[tuple[str | None, str | None], list[float]] = {}
    for a in timeline.attempts:
        if a.source == "gateway" and a.request_id is not None:
            gateway.setdefault((a.request_id, a.replica), []).append(a.t)
    before: dict[str, list[float]] = {}  # each request's arrivals and answers, by time
    for a in timeline.attempts:
        if a.source == "replica" and a.client and a.request_id is not None:
            before.setdefault(a.request_id, []).append(a.t)
    for answer in timeline.answers:
        if answer.request_id is not None:
            before.setdefault(answer.request_id, []).append(answer.t)
    out: dict[int, float] = {}
    for a in timeline.attempts:
        if a.source != "replica" or not a.client or a.request_id is None:
            continue
        stamps = [t for t in gateway.get((a.request_id, a.replica), []) if t <= a.t + SAME_TRY_SLACK]
        if stamps:
            out[id(a)] = max(stamps)
            continue
        candidates = [t for t in before.get(a.request_id, []) if t < a.t]
        if a.request_id in started:
            candidates.append(started[a.request_id])
        out[id(a)] = min(a.t, max(candidates)) if candidates else a.t
    return out


class RetryAfterHonoured(Expectation):
    """No try of a client request reached a replica of ``target`` before the ``Retry-After`` it had sent passed."""

    kind: Literal["retry_after_honoured"]
    target: Target = Field(description="The replica(s) whose Retry-After must be honoured, e.g. chat[*].")

    def describe(self) -> str:
        return f"no request reaches {self.target} before the Retry-After it sent has passed"

    def bound_text(self) -> str:
        return "0 early tries"

    def judge(self, timeline: Timeline) -> Verdict:
        if not timeline.attempt_logs.get("replica"):
            raise Unjudgeable("the run kept no attempt logs of the upstreams (a journal from before they existed, "
                              "or your own servers: upstreams[].address), so tries cannot be timed")
        mine = set(replicas_of(self.target, timeline))
        promises = [a for a in timeline.answers if a.replica in mine and a.until is not None]
        if not promises:
            answered = sum(a.replica in mine for a in timeline.answers)
            raise Unjudgeable(f"no answer of {self.target} sent a Retry-After ({answered} answers journalled): "
                              "nothing was promised, so there is nothing to honour")
        earliest = earliest_sends(timeline)
        early: list[EarlyTry] = []
        for attempt in timeline.attempts:
            if attempt.source != "replica" or not attempt.client or attempt.replica not in mine:
                continue
            sent = earliest.get(id(attempt), attempt.t)
            broken = [p for p in promises if p.replica == attempt.replica and p.until is not None
                      and attempt.t < p.until
                      and p.t + (0.0 if p.request_id == attempt.request_id else READ_SLACK) <= sent]
            if broken:
                early.append(EarlyTry(attempt, max(broken, key=lambda p: p.until or 0.0)))
        waits = sorted({p.retry_after for p in promises if p.retry_after is not None})
        asked = f"{waits[0]:g}s" if len(waits) == 1 else f"{waits[0]:g}s to {waits[-1]:g}s"
        detail = (f"{len(promises)} answers of {self.target} asked to wait ({asked}; statuses "
                  f"{', '.join(str(s) for s in sorted({p.status for p in promises if p.status is not None}))})")
        if not early:
            return self.verdict(True, "0 early tries", detail + "; no try reached it before its wait was over",
                                bound_value=0, measured_value=0)
        named = ", ".join(e.text() for e in early[:NAMED]) + (f" and {len(early) - NAMED} more"
                                                              if len(early) > NAMED else "")
        return self.verdict(False, f"{len(early)} early tries",
                            detail + f"; {len(early)} tries reached it before the wait was over, e.g. {named}",
                            bound_value=0, measured_value=len(early))
