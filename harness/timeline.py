"""A run's journal turned into what expectations reason about: requests, health, faults.

Times here are seconds since ``load.started`` (the origin of every time in a scenario).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Request:
    """One client request through the gateway."""

    t: float                  # start, seconds since load start
    latency: float            # seconds until the response ended (or failed)
    kind: str                 # request type from the load mix, e.g. chat, chat_stream
    status: int | None        # HTTP status, None when no response came
    error: str | None         # None for success; connect, reset, timeout, http_5xx, http_4xx, stream_incomplete
    replica: str | None       # the replica that served it (from its identity header)
    body: str | None = None   # start of the body of a failed response
    ttft: float | None = None # time to first token for streams, seconds
    routed_to: str | None = None  # the replica the gateway sent it to (from the gateway's header)
    id: str | None = None     # the load's request id (x-chaosgate-request), which its attempts carry
    retry_after: str | None = None     # an error answer's Retry-After header, as received
    retry_after_ms: str | None = None  # an error answer's retry-after-ms header, as received
    model: str | None = None  # the model field of the answer (a successful one)

    @property
    def ok(self) -> bool:
        return self.error is None

    def reached(self, replicas: set[str]) -> bool:
        """Whether the gateway sent this request to (or it was served by) one of ``replicas``."""
        return self.replica in replicas or self.routed_to in replicas


@dataclass(frozen=True)
class Attempt:
    """One try of a request at one replica (harness/attempts.py): seen arriving by the replica's own
    process (``source`` replica), or logged by the gateway as sent to it (``source`` gateway; includes
    the tries a network fault stopped before they reached the process)."""

    t: float                  # arrival (replica) or the try's start (gateway), seconds since load start
    replica: str | None       # None: a gateway try to an address that is no replica of the run
    source: str               # replica or gateway
    request_id: str | None    # the load's request id it carried; None: not from the load (health checks, probes)
    health: bool = False      # the gateway's health check (replica source)
    path: str | None = None
    status: int | None = None  # gateway source: the answer to this try (None: none came)
    flags: str | None = None   # gateway source: the gateway's words for how the try ended (Envoy's response flags)

    @property
    def client(self) -> bool:
        """Whether this try is part of the load's traffic (not a health check or a probe)."""
        return not self.health and self.request_id is not None


@dataclass(frozen=True)
class Answer:
    """A fake's answer to one try (``attempt.answer``): what it said, what it asked, what it generated."""

    t: float                  # when its status line went out, seconds since load start
    replica: str
    request_id: str | None    # the load's request id; None: not from the load (a gateway's check, a probe)
    status: int | None
    retry_after: float | None = None  # the seconds its Retry-After (or retry-after-ms) asked for; None: none sent
    tokens: int = 0           # content tokens it generated and sent (a stream cut short: those that went out)
    model: str | None = None
    ended: float | None = None  # when the answer ended, seconds since load start

    @property
    def until(self) -> float | None:
        """The moment before which this answer asked that nothing come back to its replica."""
        return None if self.retry_after is None else self.t + self.retry_after


@dataclass(frozen=True)
class HealthChange:
    """The gateway's view of one replica from ``t`` on."""

    t: float
    replica: str
    healthy: bool
    flags: str
    polled: float | None = None  # when the observer's poll saw it, if ``t`` is the gateway's own stamp of it
    stamped_by: str = ""         # the gateway's words in its own log for it (e.g. 'eject_unhealthy_event NETWORK')
    answered: float | None = None  # when the gateway answered that poll: the view is the gateway's at some
                                   # moment between ``t`` (the poll's start) and this


# A gateway's own stamp of a change may come up to this long after the answer to the poll that saw it:
# Envoy's stamps are truncated to whole milliseconds, HAProxy's to microseconds; the clocks are one (the same
# kernel). Measured (Envoy 1.40, outlier ejections): the stamp up to 5 ms after the poll's start, inside its answer.
STAMP_TOLERANCE = 0.002


@dataclass(frozen=True)
class HealthStamp:
    """The gateway's own stamp of one health change (a ``gateway.health`` event)."""

    t: float
    replica: str
    healthy: bool
    what: str
    change: bool = True  # False: a passing check (Envoy), which readmits only a host outlier detection ejected


@dataclass(frozen=True)
class HealthRound:
    """One round of the gateway's background checks, as the gateway stamped it (LiteLLM,
    ``gateway.health_rounds``): its checks began at ``started``, its verdicts were written at ``written``
    (None: still under way when the list was taken)."""

    round: int | None
    started: float
    written: float | None


@dataclass(frozen=True)
class FlagsChange:
    """The gateway's own words for one replica's state from ``t`` on (``hosts`` events), e.g. HAProxy's
    ``UP 1/2 INI`` before its first check and ``UP L7OK`` after."""

    t: float
    replica: str
    flags: str


@dataclass(frozen=True)
class FaultWindow:
    """When a fault was really active (from the journal, not from the plan)."""

    label: str
    kind: str
    target: str
    replicas: tuple[str, ...]
    start: float
    end: float


@dataclass(frozen=True)
class ProcessEvent:
    """A replica process exited, was restarted, or became ready again (from the supervisor)."""

    t: float
    replica: str
    type: str                 # process.exited, process.restarted, process.ready
    oom: bool = False         # exited: the kernel's OOM killer ended it
    signal: str | None = None  # exited: the signal that ended it


@dataclass(frozen=True)
class DiagnosisRecord:
    """What ``chaosgate diagnose`` named for one replica during the run (harness/diagnose/scheduled.py)."""

    t: float
    replica: str
    key: str                  # which expectation asked for it
    cause: str | None         # None: every layer passed (or the diagnosis could not run: see error)
    layer: str | None
    evidence: str
    error: str | None = None


@dataclass
class Timeline:
    """Everything a run recorded, on one time axis."""

    t0: float
    end: float
    replicas: list[str]
    requests: list[Request] = field(default_factory=list)
    health: dict[str, list[HealthChange]] = field(default_factory=dict)
    faults: list[FaultWindow] = field(default_factory=list)
    processes: list[ProcessEvent] = field(default_factory=list)
    diagnoses: list[DiagnosisRecord] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)  # the fakes' answers to tries (attempt.answer)
    # which attempt logs the run kept (stack.ready's attempt_logs): replica (the fakes), gateway (its log's name)
    attempt_logs: dict[str, Any] = field(default_factory=dict)
    complete: bool = True
    # the gateway's check rounds (gateway.health_rounds); None: the journal has none
    health_rounds: list[HealthRound] | None = None
    # every change of each replica's flags in the gateway's own words (hosts events), by replica
    flags: dict[str, list[FlagsChange]] = field(default_factory=dict)

    # -- processes --------------------------------------------------------------
    def first_process_event(self, replica: str, type: str, after: float) -> ProcessEvent | None:
        """The first ``type`` event (e.g. ``process.ready``) of ``replica`` at or after ``after``."""
        return next((p for p in self.processes if p.replica == replica and p.type == type and p.t >= after), None)

    # -- health -----------------------------------------------------------------
    def first_unhealthy(self, replica: str, after: float) -> float | None:
        """The first moment at or after ``after`` when the gateway saw ``replica`` unhealthy."""
        return self._first_state(replica, after, healthy=False)

    def first_healthy(self, replica: str, after: float) -> float | None:
        """The first moment at or after ``after`` when the gateway saw ``replica`` healthy."""
        return self._first_state(replica, after, healthy=True)

    def healthy_at(self, replica: str, t: float) -> bool | None:
        """The gateway's view of ``replica`` at ``t``; None before the first sample."""
        state: bool | None = None
        for change in self.health.get(replica, []):
            if change.t > t:
                break
            state = change.healthy
        return state

    def _first_state(self, replica: str, after: float, healthy: bool) -> float | None:
        if self.healthy_at(replica, after) is healthy:
            return after
        for change in self.health.get(replica, []):
            if change.t >= after and change.healthy is healthy:
                return change.t
        return None

    # -- requests ---------------------------------------------------------------
    def requests_between(self, start: float, end: float) -> list[Request]:
        """Requests that started in [start, end)."""
        return [r for r in self.requests if start <= r.t < end]


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def build_timeline(events: list[dict[str, Any]]) -> Timeline:
    """Fold journal events into a Timeline; a journal cut short gives a partial one."""
    header = events[0]
    t0 = next((e["ts"] for e in events if e["type"] == "load.started"), header["ts"])
    last = max(e["ts"] for e in events)
    finished = next((e["ts"] for e in events if e["type"] == "load.finished"), None)
    complete = any(e["type"] == "run.finished" and e.get("outcome") == "complete" for e in events)
    timeline = Timeline(t0=t0, end=(finished or last) - t0, replicas=list(header.get("replicas", [])),
                        complete=complete)
    open_faults: dict[str, dict[str, Any]] = {}
    by_address: dict[str, str] = {}
    stamps: list[HealthStamp] = []
    real: set[str] = set()  # the user's own servers (upstreams[].address): they stamp no identity header
    for event in events:
        kind, t = event["type"], event["ts"] - t0
        if kind == "stack.ready":
            by_address = _replicas_by_address(event)
            real = {name for name, info in event.get("endpoints", {}).get("replicas", {}).items() if info.get("real")}
            timeline.attempt_logs = dict(event.get("attempt_logs") or {})
        elif kind == "request":
            routed_to = by_address.get(event.get("upstream") or "")
            # a user's own server says nothing of who it is: it served what the gateway sent it and answered
            served = routed_to if routed_to in real and event.get("error") is None else event.get("replica")
            timeline.requests.append(Request(
                t=t, latency=event["latency"], kind=event["kind"], status=event.get("status"),
                error=event.get("error"), replica=served, body=event.get("body"),
                ttft=event.get("ttft"), routed_to=routed_to, id=event.get("id"),
                retry_after=event.get("retry_after"), retry_after_ms=event.get("retry_after_ms"),
                model=event.get("model")))
        elif kind == "attempt":
            timeline.attempts.append(Attempt(
                t=t, replica=event.get("replica"), source=event.get("source", "replica"),
                request_id=event.get("request_id"), health=bool(event.get("health")), path=event.get("path"),
                status=event.get("status"), flags=event.get("flags")))
        elif kind == "attempt.answer":
            retry_after, ended = event.get("retry_after"), event.get("ended")
            timeline.answers.append(Answer(
                t=t, replica=event["replica"], request_id=event.get("request_id"), status=event.get("status"),
                retry_after=float(retry_after) if isinstance(retry_after, int | float) and _is_number(retry_after) else None,
                tokens=int(event.get("tokens") or 0), model=event.get("model"),
                ended=ended - t0 if _is_number(ended) else None))
        elif kind == "health":
            answered = event.get("answered")
            timeline.health.setdefault(event["replica"], []).append(
                HealthChange(t=t, replica=event["replica"], healthy=event["healthy"], flags=event.get("flags", ""),
                             answered=answered - t0 if _is_number(answered) and answered >= event["ts"] else None))
        elif kind == "gateway.health" and isinstance(event.get("replica"), str) and event["ts"] >= header["ts"]:
            # (a stamp from before the run began is an earlier run's line of a log appended to)
            stamps.append(HealthStamp(t=t, replica=event["replica"], healthy=bool(event.get("healthy")),
                                      what=str(event.get("what", "")), change=event.get("change", True) is not False))
        elif kind == "hosts":
            _add_flags(timeline, by_address, t, event.get("hosts"))
        elif kind == "gateway.health_rounds":
            timeline.health_rounds = _health_rounds(event.get("rounds"), t0)
        elif kind in ("process.exited", "process.restarted", "process.ready"):
            timeline.processes.append(ProcessEvent(t=t, replica=event["replica"], type=kind,
                                                   oom=bool(event.get("oom")), signal=event.get("signal")))
        elif kind == "diagnosis":
            timeline.diagnoses.append(DiagnosisRecord(
                t=t, replica=event["replica"], key=event.get("key", ""), cause=event.get("cause"),
                layer=event.get("layer"), evidence=event.get("evidence", ""), error=event.get("error")))
        elif kind == "fault.started":
            open_faults[event["fault"]] = {**event, "t": t}
        elif kind == "fault.cleared" and event["fault"] in open_faults:
            started = open_faults.pop(event["fault"])
            timeline.faults.append(_window(started, end=t))
    for started in open_faults.values():  # never cleared: the run ended (or crashed) first
        timeline.faults.append(_window(started, end=timeline.end))
    for replica, changes in timeline.health.items():
        timeline.health[replica] = stamped(changes, [s for s in stamps if s.replica == replica])
    timeline.faults.sort(key=lambda f: f.start)
    timeline.requests.sort(key=lambda r: r.t)
    timeline.attempts.sort(key=lambda a: a.t)
    timeline.answers.sort(key=lambda a: a.t)
    timeline.processes.sort(key=lambda p: p.t)
    return timeline


def stamped(changes: list[HealthChange], stamps: list[HealthStamp]) -> list[HealthChange]:
    """One replica's polled changes, each moved to the gateway's own stamp of it where its log has one: the
    first change stamped in the change's direction after the last opposite one, between the poll before and this
    poll (harness/gateway_events.py); for a readmission without one, the last passing check before this poll
    (the check that un-ejected a host outlier detection ejected). A change without a stamp keeps its polled time."""
    stamps = sorted(stamps, key=lambda s: s.t)
    out: list[HealthChange] = []
    previous = -math.inf
    for change in changes:
        answered = change.answered if change.answered is not None else change.t
        between = [s for s in stamps if previous < s.t <= answered + STAMP_TOLERANCE]
        opposite = [i for i, s in enumerate(between) if s.healthy is not change.healthy and s.change]
        after = between[opposite[-1] + 1:] if opposite else between
        previous = change.t
        changes_stamped = [s for s in after if s.change and s.healthy is change.healthy]
        checks = [s for s in after if not s.change and s.healthy is change.healthy]
        stamp = changes_stamped[0] if changes_stamped else (checks[-1] if checks else None)
        if stamp is not None:
            change = replace(change, t=stamp.t, polled=change.t, stamped_by=stamp.what)
        out.append(change)
    return out


def _health_rounds(rounds: Any, t0: float) -> list[HealthRound]:
    """The stamped rounds of a ``gateway.health_rounds`` event; an entry without a numeric ``started`` (or with a
    ``written`` that is neither a number nor null) says nothing and is left out."""
    out: list[HealthRound] = []
    for r in rounds if isinstance(rounds, list) else []:
        if not isinstance(r, dict):
            continue
        started, written, number = r.get("started"), r.get("written"), r.get("round")
        if not isinstance(started, int | float) or not _is_number(started) or \
                not (written is None or _is_number(written)):
            continue
        out.append(HealthRound(round=number if _is_number(number) and isinstance(number, int) else None,
                               started=started - t0, written=None if written is None else float(written) - t0))
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _add_flags(timeline: Timeline, by_address: dict[str, str], t: float, hosts: Any) -> None:
    """One ``hosts`` event: a FlagsChange for each replica whose flags differ from its last ones."""
    for address, flags in hosts.items() if isinstance(hosts, dict) else []:
        replica = by_address.get(address)
        if replica is None or not isinstance(flags, str):
            continue
        changes = timeline.flags.setdefault(replica, [])
        if not changes or changes[-1].flags != flags:
            changes.append(FlagsChange(t=t, replica=replica, flags=flags))


def _replicas_by_address(stack_ready: dict[str, Any]) -> dict[str, str]:
    """``host:port`` the gateway dials for each replica (its Toxiproxy proxy) → replica name.

    ``gateway_address`` is that address as the gateway sees it (in containers, the proxy's
    address on the run's network); journals written before it existed have only ``proxy_url``."""
    replicas = stack_ready.get("endpoints", {}).get("replicas", {})
    return {(info.get("gateway_address") or info["proxy_url"].removeprefix("http://")): name
            for name, info in replicas.items()}


def _window(started: dict[str, Any], end: float) -> FaultWindow:
    return FaultWindow(label=started["fault"], kind=started["kind"], target=started["target"],
                       replicas=tuple(started["replicas"]), start=started["t"], end=end)
