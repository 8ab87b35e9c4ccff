"""Stream-aware detection: a stream stalled before its first token is let go of within the configured timeout,
and its client is failed over or told.

A provider that sends a 200 and its stream's headers and then nothing (``stall_first_token``) passes every
health check and every status-based rule: only a gateway that times the stream itself notices. The fakes
journal every answer (``attempt.answer``: when its status line went out, when it ended, the content tokens it
sent), so each stalled try is an answer of a ``target`` replica that went out during the fault with a 2xx/3xx
status and no token, and the time the gateway held on to it is from its headers to its end (the gateway closed
the connection: its timeout fired, or something else let go).

* ``within: DURATION``: every stalled try let go of within DURATION.
* ``within: promised``: every stalled try let go of inside the window the gateway's configuration promises
  (harness/promise/stall.py: Envoy's route timeout, LiteLLM's stream_timeout or timeout). Earlier fails too:
  the configured timeout did not end it, something else did (the client gave up, a reset on the way, a fault
  that closed the connection), so the configuration is not what protects the client.

Either way each stalled try's client request must have been failed over (the client got a whole answer from
another try) or ended by the gateway (any error but the client's own ``timeout``); a client that gave up first
was protected by nothing on the gateway. Client requests the journal does not hold (in flight when the load
ended) count for the gateway's timing only, and not at all when the try was still held at the load's end (the
load's end let go of it).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from harness.durations import DurationOrPromised, format_duration
from harness.expectations.base import PromisedExpectation, Target, Unjudgeable, Verdict, replicas_of, seconds
from harness.timeline import Answer, Request, Timeline

if TYPE_CHECKING:
    from harness.promise.window import Promise

NAMED = 3  # stalled tries named in a failing detail


def stalled_tries(timeline: Timeline, replicas: set[str], start: float, end: float) -> list[Answer]:
    """The answers of ``replicas`` to client tries that went out in [start, end] with a 2xx/3xx status and no token."""
    return sorted((a for a in timeline.answers if a.replica in replicas and a.request_id is not None
                   and a.status is not None and a.status < 400 and a.tokens == 0 and start <= a.t <= end),
                  key=lambda a: a.t)


def held(answer: Answer) -> float | None:
    """How long the gateway held on to a stalled try (None: the journal never saw it end)."""
    return None if answer.ended is None else answer.ended - answer.t


class StallDetected(PromisedExpectation):
    """Every stream of ``target`` that stalled before its first token was let go of within ``within``, and its
    client failed over or told."""

    kind: Literal["stall_detected"]
    target: Target = Field(description="The replica(s) whose streams stall before their first token, e.g. chat[0].")
    within: DurationOrPromised = Field(
        description="Longest time from a stalled try's headers to the gateway letting go of it; 'promised': inside "
                    "the window its configured stream timeout promises (earlier fails too: something else ended it).")

    def describe(self) -> str:
        bound = "the window its configured stream timeout promises" if self.within == "promised" \
            else format_duration(self.within)
        return (f"a stream of {self.target} stalled before its first token is let go of within {bound}, and its "
                "client failed over or told")

    def bound_text(self) -> str:
        return "in the promised window" if self.within == "promised" else f"≤ {format_duration(self.within)}"

    def judge_promised(self, timeline: Timeline, promise: Promise | None) -> Verdict:
        from dataclasses import replace

        from harness.promise.window import EARLY_SLACK, Never, Unknown, Window

        fault = self.related_fault(timeline, self.target)
        stalled = stalled_tries(timeline, set(replicas_of(self.target, timeline)), fault.start, fault.end)
        if not stalled:
            raise Unjudgeable(f"no stream of {self.target} stalled before its first token during {fault.label} "
                              "(no answer went out with its headers and no token): nothing to time")
        if self.within == "promised":
            if promise is None or isinstance(promise, Unknown):
                why = promise.why if isinstance(promise, Unknown) else "no promise applies to this run"
                raise Unjudgeable(f"within: promised, but the promised window is not known: {why}")
            if isinstance(promise, Never):
                raise Unjudgeable(f"within: promised, but the configuration promises nothing ends the stall "
                                  f"({promise.why})")
        window = promise if self.within == "promised" and isinstance(promise, Window) else None
        if window is not None:
            upper, lower = window.upper, window.earliest - EARLY_SLACK
        else:
            assert isinstance(self.within, float)
            upper, lower = self.within, None
        requests = {r.id: r for r in timeline.requests if r.id is not None}
        # A try whose client request the journal does not hold and that was still held when the load ended was cut
        # by the load's end (its client left), not judged: nothing the gateway's configuration says ended it.
        cut = [a for a in stalled if a.request_id not in requests and (a.ended is None or a.ended >= timeline.end)]
        stalled = [a for a in stalled if a not in cut]
        if not stalled:
            raise Unjudgeable(f"every stream of {self.target} that stalled during {fault.label} was still held when "
                              f"the load ended ({len(cut)}): lengthen load.duration past the fault's end plus the "
                              "stream timeout")
        times = [held(a) for a in stalled]
        late = [a for a, t in zip(stalled, times, strict=True) if t is None or t > upper]
        early = [a for a, t in zip(stalled, times, strict=True) if t is not None and lower is not None and t < lower]
        outcomes: Counter[str] = Counter()
        gave_up: list[Answer] = []
        for answer in stalled:
            request = requests.get(answer.request_id or "")
            outcome = _outcome(request)
            outcomes[outcome] += 1
            if outcome == "the client's own timeout":
                gave_up.append(answer)
        known = [t for t in times if t is not None]
        longest = None if len(known) < len(times) else max(known)
        detail = (f"{len(stalled)} {'stream' if len(stalled) == 1 else 'streams'} of {self.target} stalled before "
                  f"their first token during {fault.label}; the gateway let go of "
                  + (f"them {seconds(min(known))} to {seconds(max(known))}" if known else "none of them")
                  + " after their headers went out" + (f" ({len(times) - len(known)} never)" if longest is None else "")
                  + "; their clients: " + ", ".join(f"{n} {what}" for what, n in sorted(outcomes.items())))
        if cut:
            detail += f"; {len(cut)} more still held when the load ended, not judged"
        if window is not None:
            detail += f"; its configuration promised {window.text()} ({window.how})"
        if early:
            detail += (f"; {len(early)} let go of before the configured timeout could have fired (something else "
                       f"ended them: the client leaving, a reset on the way), e.g. {_named(early)}")
        if late:
            detail += f"; {len(late)} held longer than {seconds(upper)}, e.g. {_named(late)}"
        if gave_up:
            detail += (f"; {len(gave_up)} ended by the client giving up first (load.request_timeout), not by the "
                       f"gateway, e.g. {_named(gave_up)}")
        passed = not early and not late and not gave_up
        measured = "never" if longest is None else seconds(longest)
        verdict = self.verdict(passed, measured, detail, bound_value=upper, measured_value=longest)
        return replace(verdict, bound=f"in {window.text()}") if window is not None else verdict


def _outcome(request: Request | None) -> str:
    if request is None:
        return "not in the journal (in flight when the load ended)"
    if request.ok:
        return "failed over (a whole answer from another try)"
    if request.error == "timeout":
        return "the client's own timeout"
    return f"told ({request.error}{'' if request.status is None else f', {request.status}'})"


def _named(answers: list[Answer]) -> str:
    parts = []
    for a in answers[:NAMED]:
        how = "never let go of" if a.ended is None else f"let go of after {seconds(a.ended - a.t)}"
        parts.append(f"request {a.request_id} at {a.replica} (headers at {seconds(a.t)}, {how})")
    more = len(answers) - NAMED
    return ", ".join(parts) + (f" and {more} more" if more > 0 else "")
