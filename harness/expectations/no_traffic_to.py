"""No attempt reaches a replica during a window: no try of any client request, retries included.

A gateway that retries shows the client only the last try: a request whose first try went to the
faulty replica and whose retry succeeded elsewhere looks, from the client, like one routed around
it. So this counts, in the window (by arrival or start time):

* client requests the target served (its identity header) or the gateway routed to it (the gateway's
  upstream header of the last try);
* every try the target's own process saw arrive carrying a load request id (the fakes' attempt logs:
  the gateway's retries included, health checks and probes not);
* every try the gateway logged as sent to the target, where it logs each try (Envoy's upstream_log,
  nginx's ``$upstream_addr``): this adds the tries a network fault stopped before they reached the
  process (a refused connection; a toxic on the gateway-to-replica direction). Toxiproxy's toxics on
  the default downstream direction (reset_peer, timeout, latency) let the request through and act on
  the answer, so the process sees those tries.

It passes only when all three are zero. The detail says which of them the run could count: without
a gateway log of each try (HAProxy, the LiteLLM proxy), tries refused or black-holed on the way to
the replica are not visible; a journal written before the attempt logs existed counts the last try
of each request only.

A try counts by when the gateway sent it. Where the gateway logs each try, that is its own stamp.
Where it does not, only the try's arrival is known: the gateway picked the replica at some moment
between the request's start (for a retry, the previous try's arrival) and then, so a try counts from
the window's start only when even that earliest moment is inside the window. A request in flight when
the gateway noticed the fault, routed just before and arriving just after, is not held against it
(measured on LiteLLM: a request started 27 ms before its check's verdict arrived 7 ms after detection).

In the ``after_detection`` window, tries sent in the first ``HOST_SET_LAG`` after the gateway's own stamp of
the ejection are named but not counted: the stamp is written by the thread that ran the health check, and each
thread that routes requests takes up the new set of hosts a moment later (Envoy posts it to every worker); a
request a worker was already routing in that moment still goes to the ejected replica. Measured on Envoy: such
tries 0-3 ms after the stamp on one stack, up to 36 ms with three stacks sharing 2 cores. A try later than that
counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from harness.expectations.base import (
    Expectation, Target, Unjudgeable, Verdict, WindowSpec, describe_window, requests_in, replicas_of, seconds,
)
from harness.timeline import Attempt, Request, Timeline

NAMED = 3  # tries named in a failed verdict's detail


@dataclass(frozen=True)
class AttemptsAt:
    """What reached some replicas in [start, end): the three counts of the module docstring."""

    requests: list[Request]    # client requests served by or routed to them (the last try)
    seen: list[Attempt]        # tries of client requests their own processes saw arrive
    sent: list[Attempt]        # tries the gateway logged as sent to them
    unlabelled: list[Attempt]  # requests without a load id that reached them (not health checks): not counted

    @property
    def count(self) -> int:
        """Attempts: a try the gateway logged and the replica saw is one, not two."""
        return max(len(self.requests), len(self.seen), len(self.sent))


# The gateway's stamp of a try's start and the replica's stamp of its arrival come from two processes on one
# clock: measured 0.2-18 ms apart locally, up to 91 ms on docker (docs/fakes.md); a gateway try counts as the same
# try when it started no later than this after the replica saw it arrive.
SAME_TRY_SLACK = 0.1

# How long after its own stamp of an ejection a gateway's routing threads may still send a try to the ejected
# replica (module docstring): measured up to 36 ms on a loaded machine; tries later than this count.
HOST_SET_LAG = 0.1


def after_host_set_lag(detected: float, end: float) -> float:
    """Where counting starts in a window that begins at the gateway's detection stamp (``HOST_SET_LAG``)."""
    return detected + HOST_SET_LAG if end > detected + HOST_SET_LAG else detected


def sent_at(attempt: Attempt, gateway_tries: dict[tuple[str | None, str | None], list[float]],
            earliest: dict[int, float] | None = None) -> float:
    """When a try the replica saw was sent: the gateway's own stamp of that try's start where it logged it (the
    latest try of the same request at the same replica that started before it arrived). Else, the earliest it
    can have been sent (``earliest``, by the attempt's id): the gateway decided where to send it at some moment
    between then and its arrival, so it counts in a window only if that whole span is in it. A frozen process
    stamps a try when it wakes, long after the gateway sent it (process_freeze)."""
    starts = [t for t in gateway_tries.get((attempt.request_id, attempt.replica), []) if t <= attempt.t + SAME_TRY_SLACK]
    if starts:
        return max(starts)
    return (earliest or {}).get(id(attempt), attempt.t)


def earliest_sends(timeline: Timeline) -> dict[int, float]:
    """For each try a replica saw of a client request (by the attempt's id): the earliest moment the gateway can
    have sent it, where the gateway logs no tries of its own: its request's start, or for a retry the arrival
    of the request's try before it (the gateway cannot have picked the replica before either)."""
    started = {r.id: r.t for r in timeline.requests if r.id is not None}
    arrivals: dict[str, list[float]] = {}
    for a in timeline.attempts:
        if a.source == "replica" and a.client and a.request_id is not None:
            arrivals.setdefault(a.request_id, []).append(a.t)
    out: dict[int, float] = {}
    for a in timeline.attempts:
        if a.source == "replica" and a.client and a.request_id in started:
            before = [t for t in arrivals.get(a.request_id or "", []) if t < a.t]
            out[id(a)] = min(a.t, max([started[a.request_id], *before]))
    return out


def attempts_at(timeline: Timeline, targets: set[str], start: float, end: float,
                requests: list[Request] | None = None) -> AttemptsAt:
    """Every attempt at ``targets`` in [start, end) by when it was sent (``requests``: the client requests of the
    window to consider, when a window selects them otherwise than by start time, as ``baseline`` does)."""
    window = timeline.requests_between(start, end) if requests is None else requests
    gateway_tries: dict[tuple[str | None, str | None], list[float]] = {}
    for a in timeline.attempts:
        if a.source == "gateway" and a.request_id is not None:
            gateway_tries.setdefault((a.request_id, a.replica), []).append(a.t)
    earliest = earliest_sends(timeline)
    # a try counts when it was sent inside the window: by the gateway's stamp of it, or when only its arrival is
    # known, when even the earliest it can have been sent is inside (and it arrived before the window's end)
    in_window = [a for a in timeline.attempts if a.replica in targets and (
        start <= a.t < end if a.source == "gateway" else
        start <= sent_at(a, gateway_tries, earliest) and sent_at(a, gateway_tries) < end)]
    return AttemptsAt(requests=[r for r in window if r.reached(targets)],
                      seen=[a for a in in_window if a.source == "replica" and a.client],
                      sent=[a for a in in_window if a.source == "gateway"],
                      unlabelled=[a for a in in_window if a.source == "replica" and not a.health and a.request_id is None])


class NoTrafficTo(Expectation):
    """Counts every attempt the gateway made at the target: client requests served by or routed to it,
    the tries its process saw (retries included) and the tries the gateway logged as sent to it."""

    kind: Literal["no_traffic_to"]
    target: Target = Field(description="The replica(s) that must get no traffic.")
    window: WindowSpec = Field(default="after_detection",
                               description="Which requests and tries count (by start time; a try by its arrival).")

    def describe(self) -> str:
        return f"no request or retry reaches {self.target} {describe_window(self.window)}"

    def bound_text(self) -> str:
        return "0 attempts"

    def judge(self, timeline: Timeline) -> Verdict:
        start, end = self.window_bounds(self.window, timeline, self.target)
        if end <= start:
            raise Unjudgeable(f"the window is empty ({start:.3f}s to {end:.3f}s)")
        targets = set(replicas_of(self.target, timeline))
        counted_from = after_host_set_lag(start, end) if self.window == "after_detection" else start
        found = attempts_at(timeline, targets, counted_from, end, requests_in(timeline, self.window, counted_from, end))
        requests, seen, sent, unlabelled = found.requests, found.seen, found.sent, found.unlabelled
        gateway_log = timeline.attempt_logs.get("gateway")
        between = f"between {start:.3f}s and {end:.3f}s"
        counted = _what_was_counted(timeline, self.target, requests, seen, sent, gateway_log)
        if unlabelled:
            counted += (f"; not counted: {len(unlabelled)} requests without a load request id reached it "
                        f"(a health check that is an ordinary request, such as LiteLLM's chat completion; a probe; or a gateway "
                        f"that does not pass x-chaosgate-request on)")
        if counted_from > start and (lagged := attempts_at(timeline, targets, start, counted_from,
                                                 requests_in(timeline, self.window, start, counted_from)).count):
            counted += (f"; not counted: {lagged} tries sent in the first {seconds(HOST_SET_LAG)} after the gateway "
                        f"marked {self.target} unhealthy, while its routing threads took up the new host set")
        attempts = found.count
        if attempts == 0:
            return self.verdict(True, "0 attempts", f"no attempt reached {self.target} {between}: {counted}",
                                bound_value=0, measured_value=0)
        tries = sorted(sent or seen, key=lambda a: a.t)
        first = min([r.t for r in requests] + [a.t for a in tries])
        last = max([r.t for r in requests] + [a.t for a in tries])
        detail = (f"{attempts} attempts reached {self.target} in the window: {counted}; "
                  f"the first {seconds(first - start)} after the window began, the last {seconds(last - start)}")
        if retried := _answered_elsewhere(timeline, tries, targets):
            detail += (f"; {len(retried)} of those client requests were answered by another replica after a try "
                       f"at {self.target}, so their client saw no sign of it")
        if named := _named(tries, start):
            detail += f"; e.g. {named}"
        unit = "attempts" if timeline.attempt_logs else "requests (last tries only)"
        return self.verdict(False, f"{attempts} {unit}", detail, bound_value=0, measured_value=attempts)


def _what_was_counted(timeline: Timeline, target: str, requests: list[Request], seen: list[Attempt],
                      sent: list[Attempt], gateway_log: str | None) -> str:
    failed = sum(not r.ok for r in requests)
    parts = [f"{len(requests)} client requests served by or routed to {target} ({failed} failed)"]
    if not timeline.attempt_logs:
        parts.append("this journal has no attempt logs (written before chaosgate kept them), so only the last "
                     "try of each request was counted")
        return "; ".join(parts)
    logged = timeline.attempt_logs.get("replicas")  # set when some replicas are the user's own servers
    if isinstance(logged, list) and not set(replicas_of(target, timeline)) & set(logged):
        parts.append(f"{target} is your own server (upstreams[].address), which logs no tries of its own")
    else:
        parts.append(f"{len(seen)} tries seen arriving by {target}'s own process (retries included)")
    if gateway_log:
        stopped = max(0, len(sent) - len(seen))
        parts.append(f"{len(sent)} tries the gateway logged as sent to it ({gateway_log}"
                     + (f"; {stopped} of them never reached its process: refused or cut on the way)"
                        if stopped else ")"))
    else:
        gateway = timeline.attempt_logs.get("gateway_kind") or "this gateway"
        parts.append(f"tries stopped on the way to {target} (refused or black-holed before reaching its process) are "
                     f"not visible on {gateway}, which logs only the last try of a request")
    return "; ".join(parts)


def _answered_elsewhere(timeline: Timeline, tries: list[Attempt], targets: set[str]) -> list[Request]:
    """Client requests with a try at the targets whose answer came from another replica."""
    ids = {a.request_id for a in tries if a.request_id is not None}
    return [r for r in timeline.requests if r.id in ids and r.ok and r.replica is not None and r.replica not in targets]


def _named(tries: list[Attempt], start: float) -> str:
    """The first few tries, by request id and time: ``request 1a2b-17 at +0.120s (503 UF)``."""
    named = []
    for attempt in tries[:NAMED]:
        what = f"request {attempt.request_id}" if attempt.request_id else "a request"
        how = " ".join(str(x) for x in (attempt.status, attempt.flags) if x)
        named.append(f"{what} tried at {attempt.replica} {seconds(attempt.t - start)} into the window"
                     + (f" ({how})" if how else ""))
    more = len(tries) - len(named)
    return ", ".join(named) + (f" and {more} more" if more > 0 else "")
