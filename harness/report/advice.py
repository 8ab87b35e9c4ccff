"""'What to look at next': the causes, diagnostic steps and resolutions of 'no healthy upstream'
matched to each injected fault and each failed expectation, and tied to what the run measured.

The causes and the mapping of fault and expectation kinds to them are the one catalogue of
harness/catalogue.py, which ``chaosgate diagnose`` names its causes from too: a cause diagnosed in
a run and advised in its report has one name.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from harness.catalogue import BASELINE_CAUSES, CAUSES, EXPECTATION_CAUSES, Cause, fault_causes
from harness.durations import format_duration
from harness.expectations import Expectation, Verdict
from harness.expectations.base import Unjudgeable
from harness.expectations.diagnosis import Diagnosis
from harness.report.data import FaultOutcome, RunData
from harness.report.series import error_label
from harness.scenario import Gateway


@dataclass(frozen=True)
class Advice:
    """One entry of 'what to look at next'."""

    title: str
    failed: bool                    # a failed expectation (True) or an injected fault (False)
    measured: tuple[str, ...]       # what this run measured that bears on it
    causes: tuple[Cause, ...]


def advise(run: RunData) -> list[Advice]:
    """Failed expectations first, then every injected fault."""
    judgement = run.judgement
    items = [_for_verdict(run, e, v) for e, v in zip(judgement.scenario.expect, judgement.verdicts, strict=True)
             if not v.passed]
    items += [_for_fault(run, f) for f in run.faults]
    return items


def _causes(keys: tuple[str, ...]) -> tuple[Cause, ...]:
    return tuple(CAUSES[k] for k in dict.fromkeys(keys) if k in CAUSES)


def _for_verdict(run: RunData, expectation: Expectation, verdict: Verdict) -> Advice:
    keys = EXPECTATION_CAUSES.get(verdict.kind, ("health_check_settings",))
    if verdict.params.get("window") == "baseline":
        keys = BASELINE_CAUSES
    if isinstance(expectation, Diagnosis):  # the cause expected, then the one diagnose named: one name each
        keys = (expectation.cause, str(verdict.measured), *keys)
    measured = [f"Measured {verdict.measured} against a bound of {verdict.bound}: {verdict.detail}."]
    window = getattr(expectation, "window", None)
    if window is not None:
        try:
            start, end = expectation.window_bounds(window, run.timeline, getattr(expectation, "target", None))
        except Unjudgeable:
            pass
        else:
            measured.append(_failures_between(run, start, end))
    if not run.timeline.complete:
        measured.append(f"The run is incomplete ({run.outcome_words}), so this may be for lack of events.")
    return Advice(f"{verdict.kind} failed: {verdict.description}", True, tuple(measured), _causes(keys))


def _for_fault(run: RunData, fault: FaultOutcome) -> Advice:
    w = fault.window
    params = ", ".join(f"{k} {v}" for k, v in fault.params.items())
    measured = [f"Injected {w.kind} on {', '.join(w.replicas)} from {w.start:.2f}s to {w.end:.2f}s "
                f"({w.end - w.start:.2f}s){f'; {params}' if params else ''}."]
    if fault.detected_after is not None:
        measured.append(f"The gateway marked {', '.join(w.replicas)} unhealthy {fault.detected_after:.3f}s after it began.")
    else:
        measured.append(f"The gateway never marked {', '.join(w.replicas)} unhealthy while it lasted.")
    if fault.recovered_after is not None:
        measured.append(f"It saw them healthy again {fault.recovered_after:.3f}s after it ended.")
    elif fault.detected_after is not None:
        measured.append("It still saw them unhealthy when the run ended.")
    measured.append(_failures_between(run, w.start, w.end))
    keys = fault_causes(w.kind, fault.params.get("mode"))
    if keys is None:
        measured.append(f"The catalogue has no entry for fault kind {w.kind!r} yet; the closest general causes follow.")
        keys = ("connection_refused", "health_check_settings")
    return Advice(f"Injected {w.label}: what it imitates in production", False, tuple(measured), _causes(keys))


def _failures_between(run: RunData, start: float, end: float) -> str:
    """How the requests that started in [start, end) failed, and where the gateway sent them."""
    requests = run.timeline.requests_between(start, end)
    failed = [r for r in requests if not r.ok]
    line = f"Between {start:.2f}s and {end:.2f}s, {len(failed)} of {len(requests)} requests failed"
    if failed:
        kinds = Counter(map(error_label, failed)).most_common(4)
        line += ": " + ", ".join(f"{n} × {label}" for label, n in kinds)
        where = Counter(name for r in failed if (name := r.routed_to or r.replica))
        if where:
            line += "; the gateway had sent " + ", ".join(f"{n} to {name}" for name, n in sorted(where.items()))
        if nowhere := len(failed) - sum(where.values()):
            line += f"; {nowhere} never reached a replica"
    return line + "."


def gateway_settings(gateway: Gateway) -> list[str]:
    """The gateway's resilience settings in a few readable lines."""
    lines = []
    hc = gateway.health_check
    if hc is None:
        lines.append("no active health check")
    else:
        lines.append(f"health check {hc.path} every {format_duration(hc.interval)}, timeout "
                     f"{format_duration(hc.timeout)}, unhealthy after {hc.unhealthy_threshold} failed and healthy "
                     f"after {hc.healthy_threshold} passed checks, no_traffic_interval {format_duration(hc.no_traffic_interval)}")
    od = gateway.outlier_detection
    if od is None:
        lines.append("no outlier detection")
    else:
        lines.append(f"outlier detection: consecutive_5xx {od.consecutive_5xx}, consecutive_gateway_failure "
                     f"{od.consecutive_gateway_failure}, base_ejection_time {format_duration(od.base_ejection_time)}, "
                     f"max_ejection_percent {od.max_ejection_percent}%")
    lines.append(f"panic threshold {gateway.panic_threshold:g}%")
    retries = gateway.retries
    if retries is None:
        lines.append("no retries")
    else:
        per_try = f", per-try timeout {format_duration(retries.per_try_timeout)}" if retries.per_try_timeout else ""
        lines.append(f"{retries.num_retries} retries on {', '.join(retries.retry_on)}{per_try}")
    return lines
