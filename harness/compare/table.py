"""One scenario against several gateways: one row per gateway, built from each run's journal.

Each row is a pure function of a run (``RunData``, itself a pure function of the journal), so a
comparison can be rebuilt from the runs' folders. Per fault, a row gives the time the gateway took
to mark every replica of the fault unhealthy and healthy again, the window its own configuration
promises for both (harness/promise/; "n/a" where no formula covers the gateway), what clients saw
while the fault lasted (failed requests by kind), how many attempts still reached a broken replica
after the gateway had marked it unhealthy (every try, retries included, as no_traffic_to counts
them), and, for a fault that takes down every replica of the load's pool, the answer clients got once the gateway knew (status and body).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from harness.expectations.no_traffic_to import after_host_set_lag, attempts_at
from harness.promise.window import Placement, Promise, Window, place
from harness.report.data import FaultOutcome, RunData
from harness.report.series import error_label
from harness.timeline import Request, Timeline

BODY_CHARS = 300  # of an all-down answer's body kept in the table (the journal keeps 300 too)
GIST_CHARS = 90   # of an OpenAI-style error message used as an error's kind


def error_kind(request: Request) -> str:
    """How a request failed, as the reports name it (harness/report/series.py), except that an
    OpenAI-style JSON error body (an AI gateway's own errors, e.g. LiteLLM's) is named by its message."""
    body = (request.body or "").strip()
    if request.status is not None and body.startswith('{"error":'):
        message = _error_message(body)
        if message:
            gist = message.splitlines()[0]
            return f"{request.status} {gist[:GIST_CHARS]}{'…' if len(gist) > GIST_CHARS else ''}"
    return error_label(request)


def _error_message(body: str) -> str:
    """``error.message`` of a JSON error body, also of one the journal cut short."""
    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        start = body.find('"message":"')
        return body[start + 11:].split('","')[0].replace("\\n", "\n") if start >= 0 else ""


@dataclass(frozen=True)
class AllDown:
    """The most common answer clients got while every replica was down and the gateway knew it."""

    status: int | None      # None: the connection failed (no HTTP answer)
    body: str               # the body, or how the connection failed
    share: float            # of the failed requests in that window that got exactly this answer
    requests: int           # requests in that window

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "body": self.body, "share": round(self.share, 3), "requests": self.requests}


@dataclass(frozen=True)
class FaultRow:
    """One fault of the scenario, as one gateway handled it."""

    label: str
    kind: str
    target: str
    detected_after: float | None        # None: never marked every replica unhealthy
    recovered_after: float | None       # None: never healthy again (or never unhealthy)
    promised_detection: Promise | None
    promised_recovery: Promise | None
    errors: dict[str, int]              # failed requests during the fault, by kind
    requests: int                       # requests started during the fault
    to_broken_after_detection: int | None  # attempts at a replica of the fault after detection, retries included
    all_down: AllDown | None            # only for a fault on every replica of the load's pool
    duration: float                     # how long the fault lasted: the time detection had
    after_fault: float                  # from the fault's end to the load's end: the time recovery had

    @property
    def detection_placement(self) -> Placement:
        return place(self.promised_detection, self.detected_after, self.duration)

    @property
    def recovery_placement(self) -> Placement:
        """Nothing was ejected: nothing to readmit (unless the promise is never)."""
        available = None if self.detected_after is None else self.after_fault
        return place(self.promised_recovery, self.recovered_after, available)

    @property
    def detection_kept(self) -> bool | None:
        return self.detection_placement.held

    @property
    def recovery_kept(self) -> bool | None:
        return self.recovery_placement.held

    def to_json(self) -> dict[str, Any]:
        return {
            "fault": self.label, "kind": self.kind, "target": self.target,
            "detected_after": _round(self.detected_after), "recovered_after": _round(self.recovered_after),
            "promised_detection": _promise_json(self.promised_detection),
            "promised_recovery": _promise_json(self.promised_recovery),
            "detection_width": _width(self.promised_detection), "recovery_width": _width(self.promised_recovery),
            "detection_kept": self.detection_kept, "recovery_kept": self.recovery_kept,
            "detection_where": self.detection_placement.where, "recovery_where": self.recovery_placement.where,
            "duration": _round(self.duration), "after_fault": _round(self.after_fault),
            "requests": self.requests, "errors": self.errors,
            "to_broken_after_detection": self.to_broken_after_detection,
            "all_down": None if self.all_down is None else self.all_down.to_json(),
        }


@dataclass(frozen=True)
class GatewayRow:
    """One gateway's run of the scenario (or why it did not run)."""

    gateway: str
    status: str                          # PASSED, FAILED, INCOMPLETE or NOT RUN
    version: str | None = None
    reason: str | None = None            # why it did not run, or why the run stopped
    report: str | None = None            # the run's HTML report, relative to the comparison's folder
    requests: int = 0
    failed_requests: int = 0
    expectations: list[dict[str, Any]] = field(default_factory=list)  # verdicts as summary.json has them
    faults: list[FaultRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"gateway": self.gateway, "status": self.status, "version": self.version, "reason": self.reason,
                "report": self.report, "requests": self.requests, "failed_requests": self.failed_requests,
                "expectations": self.expectations, "faults": [f.to_json() for f in self.faults],
                "warnings": self.warnings}


@dataclass(frozen=True)
class ComparisonTable:
    scenario: str
    file: str
    runtime: str
    rows: list[GatewayRow]

    @property
    def fault_labels(self) -> list[str]:
        return list(dict.fromkeys(f.label for row in self.rows for f in row.faults))

    def to_json(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "file": self.file, "runtime": self.runtime,
                "gateways": [row.to_json() for row in self.rows]}


def kept(promise: Promise | None, measured: float | None, available: float | None) -> bool | None:
    """Whether the measured time is inside the promised window (None: nothing to hold it to, or a run
    too short to tell): harness/promise/window.place."""
    return place(promise, measured, available).held


def not_run(gateway: str, reason: str) -> GatewayRow:
    return GatewayRow(gateway=gateway, status="NOT RUN", reason=reason)


def row_from_run(gateway: str, run: RunData, summary: dict[str, Any], report: str | None) -> GatewayRow:
    """The row of one gateway's run (``summary`` is that run's summary.json content)."""
    timeline = run.timeline
    pool_replicas = _load_pool_replicas(run)
    return GatewayRow(
        gateway=gateway, status=run.status, version=run.gateway_version, reason=run.error, report=report,
        requests=len(timeline.requests), failed_requests=run.failed_requests,
        expectations=list(summary.get("expectations", [])),
        faults=[fault_row(outcome, timeline, pool_replicas) for outcome in run.faults], warnings=run.warnings)


def _load_pool_replicas(run: RunData) -> set[str]:
    scenario = run.judgement.scenario
    pool = scenario.load_pool
    return {f"{pool}[{i}]" for i in range(scenario.pools.get(pool, 0))}


def fault_row(outcome: FaultOutcome, timeline: Timeline, pool_replicas: set[str]) -> FaultRow:
    w = outcome.window
    during = timeline.requests_between(w.start, w.end)
    errors = Counter(error_kind(r) for r in during if not r.ok)
    broken = set(w.replicas)
    to_broken = None
    if outcome.detected is not None:
        detected = outcome.detected
        # every try, as no_traffic_to counts them (a retried request's first try included)
        to_broken = attempts_at(timeline, broken, after_host_set_lag(detected, w.end), w.end).count
    all_down = None
    if pool_replicas and pool_replicas <= broken:
        since = outcome.detected if outcome.detected is not None else w.start
        all_down = all_down_answer([r for r in during if r.t >= since])
    return FaultRow(label=w.label, kind=w.kind, target=w.target, detected_after=outcome.detected_after,
                    recovered_after=outcome.recovered_after, promised_detection=outcome.promised_detection,
                    promised_recovery=outcome.promised_recovery, errors=dict(errors.most_common()),
                    requests=len(during), to_broken_after_detection=to_broken, all_down=all_down,
                    duration=w.end - w.start, after_fault=max(0.0, outcome.run_end - w.end))


def all_down_answer(requests: list[Request]) -> AllDown | None:
    """The most common failed answer among ``requests`` (None: none failed, or no request at all)."""
    failed = [r for r in requests if not r.ok]
    if not failed:
        return None
    answers = Counter((r.status, (r.body or "").strip()[:BODY_CHARS] if r.status is not None else str(r.error))
                      for r in failed)
    (status, body), count = answers.most_common(1)[0]
    return AllDown(status=status, body=body, share=count / len(failed), requests=len(requests))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _width(promise: Promise | None) -> float | None:
    """How long a promised window accepts a measurement (None: not a window)."""
    return round(promise.width, 3) if isinstance(promise, Window) else None


def _promise_json(promise: Promise | None) -> dict[str, object] | None:
    return None if promise is None else promise.to_json()
