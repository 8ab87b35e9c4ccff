"""Windows built from what the gateway itself said in the run: HAProxy's check status per server
(``hosts`` events: when each server's first check passed) and LiteLLM's check rounds as the proxy
stamped them (``gateway.health_rounds``). Synthetic journals, judged as a run's; verdicts that must
fail included."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.errors import StackError
from harness.journal import JournalWriter, read_journal
from harness.judge import judge_events
from harness.run import _journal_health_rounds
from harness.promise import haproxy, litellm
from harness.promise.load import measured_facts
from harness.promise.window import Window
from harness.timeline import FlagsChange, HealthRound, build_timeline

T0 = 1_700_000_000.0
REPLICAS = ["chat[0]", "chat[1]", "chat[2]"]
ADDRESS = {r: f"127.0.0.1:{31000 + i}" for i, r in enumerate(REPLICAS)}

HAPROXY = """name: t
gateway:
  kind: haproxy
  panic_threshold: 0
  health_check: {path: /health, interval: 2s, timeout: 500ms, unhealthy_threshold: 3, healthy_threshold: 2}
upstreams:
  - {name: chat, replicas: 3}
load: {users: 3, duration: 20s}
faults:
  - {kind: reset_peer, target: "chat[0]", at: 1s, for: 12s}
expect:
  - {kind: upstream_unhealthy, target: "chat[0]", within: promised}
"""

LITELLM = """name: t
gateway:
  kind: litellm
  panic_threshold: 0
  health_check: {interval: 1s, timeout: 500ms}
upstreams:
  - {name: chat, replicas: 3}
load: {users: 3, duration: 20s}
faults:
  - {kind: reset_peer, target: "chat[0]", at: 4s, for: 7s}
expect:
  - {kind: upstream_unhealthy, target: "chat[0]", within: promised}
  - {kind: upstream_healthy, target: "chat[0]", within: promised}
"""


def journal(text: str, fault: tuple[float, float], detected: float | None, recovered: float | None = None,
            extra: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """A run whose gateway was up 0.2s before the load (its first health sample), chat[0] broken over
    ``fault`` (seconds into the load), marked unhealthy ``detected`` s after the fault's start and healthy
    ``recovered`` s after its end; ``extra``: the gateway's own words, at times relative to the load."""
    start, end = fault
    fields = {"fault": "reset_peer@chat[0]", "kind": "reset_peer", "target": "chat[0]", "replicas": ["chat[0]"], "params": {}}
    events: list[dict[str, Any]] = [
        {"type": "run.started", "ts": T0 - 3, "scenario": "t", "file": "x.yaml", "text": text, "seed": 1,
         "replicas": REPLICAS},
        {"type": "stack.ready", "ts": T0 - 2, "endpoints": {"replicas": {
            r: {"proxy_url": f"http://{a}"} for r, a in ADDRESS.items()}}},
        *({"type": "health", "ts": T0 - 0.2, "replica": r, "healthy": True, "flags": ""} for r in REPLICAS),
        {"type": "load.started", "ts": T0},
        {"type": "fault.started", "ts": T0 + start, **fields}, {"type": "fault.cleared", "ts": T0 + end, **fields},
        *({**e, "ts": T0 + e["ts"]} for e in extra or []),
        {"type": "load.finished", "ts": T0 + 20}, {"type": "run.finished", "ts": T0 + 21, "outcome": "complete"},
    ]
    if detected is not None:
        events.append({"type": "health", "ts": T0 + start + detected, "replica": "chat[0]", "healthy": False,
                       "flags": "DOWN"})
        if recovered is not None:
            events.append({"type": "health", "ts": T0 + end + recovered, "replica": "chat[0]", "healthy": True,
                           "flags": ""})
    return sorted(events, key=lambda e: e["ts"])


def hosts(t: float, flags: dict[str, str]) -> dict[str, Any]:
    return {"type": "hosts", "ts": t, "hosts": {ADDRESS[r]: f for r, f in flags.items()}}


def verdicts(events: list[dict[str, Any]]) -> tuple[list[bool], list[Any]]:
    judgement = judge_events(events)
    return [v.passed for v in judgement.verdicts], list(judgement.promises or [])


# -- the timeline reads the gateway's own words ----------------------------------------------

def test_timeline_reads_hosts_flags_by_replica_and_the_stamped_rounds() -> None:
    rounds = [{"round": 1, "started": T0 + 0.5, "written": T0 + 0.7}, {"round": 2, "started": T0 + 1.8, "written": None}]
    timeline = build_timeline(journal(HAPROXY, (1, 13), None, extra=[
        hosts(-0.2, {"chat[0]": "UP 1/2 INI", "chat[1]": "UP L7OK"}), hosts(0.3, {"chat[0]": "UP L7OK", "chat[1]": "UP L7OK"}),
        {"type": "hosts", "ts": 0.4, "hosts": {"10.9.9.9:1": "UP L7OK"}},  # no replica's address: ignored
        {"type": "gateway.health_rounds", "ts": 19.0, "gateway": "litellm", "rounds": rounds}]))
    assert timeline.flags["chat[0]"] == [FlagsChange(pytest.approx(-0.2), "chat[0]", "UP 1/2 INI"),
                                         FlagsChange(pytest.approx(0.3), "chat[0]", "UP L7OK")]
    assert [c.flags for c in timeline.flags["chat[1]"]] == ["UP L7OK"]  # unchanged flags: one change
    assert timeline.health_rounds == [HealthRound(1, pytest.approx(0.5), pytest.approx(0.7)),
                                      HealthRound(2, pytest.approx(1.8), None)]
    facts = measured_facts(judge_events(journal(HAPROXY, (1, 13), None)).scenario, "chat", timeline)
    assert facts.rounds == (pytest.approx((0.5, 0.7)),)  # only rounds that ended
    assert build_timeline(journal(HAPROXY, (1, 13), None)).health_rounds is None  # the journal has none


# -- HAProxy: the start-up state from each server's first passed check --------------------------

FALL_EARLIEST = 2 * 2.0  # reset: (fall − 1)·inter
STARTUP_EARLIEST = 0.0   # one failed check, of a reset: at once


def test_haproxy_first_check_passed_before_the_fault_needs_fall_checks() -> None:
    # Nominally the fault (1s into the load, the gateway up 0.2s before) may precede the first checks (by 3s):
    # one failed check would do. The journal says chat[0]'s first check had passed 0.3s into the load.
    nominal = verdicts(journal(HAPROXY, (1, 13), 0.5))
    assert nominal[0] == [True] and nominal[1][0].earliest == STARTUP_EARLIEST
    words = [hosts(-0.2, {r: "UP 1/2 INI" for r in REPLICAS}), hosts(0.3, {r: "UP L7OK" for r in REPLICAS})]
    passed, (promise,) = verdicts(journal(HAPROXY, (1, 13), 0.5, extra=words))
    assert isinstance(promise, Window) and promise.earliest == pytest.approx(FALL_EARLIEST)
    assert "start-up" not in promise.how
    assert passed == [False]  # detected after one check's time: too early once the first check had passed
    assert verdicts(journal(HAPROXY, (1, 13), FALL_EARLIEST + 0.5, extra=words))[0] == [True]


def test_haproxy_first_check_seen_after_the_fault_or_never_keeps_the_start_up_state() -> None:
    late = [hosts(-0.2, {r: "UP 1/2 INI" for r in REPLICAS}), hosts(1.5, {r: "UP L7OK" for r in REPLICAS})]
    passed, (promise,) = verdicts(journal(HAPROXY, (1, 13), 0.5, extra=late))
    assert passed == [True] and promise.earliest == STARTUP_EARLIEST
    assert "chat[0]'s first check was seen passed only 1.5s into the load" in promise.how
    never = [hosts(-0.2, {r: "UP 1/2 INI" for r in REPLICAS})]
    _, (promise,) = verdicts(journal(HAPROXY, (1, 13), 0.5, extra=never))
    assert promise.earliest == STARTUP_EARLIEST and "stayed INI" in promise.how


def test_haproxy_a_first_check_that_failed_says_nothing_and_the_nominal_bound_holds() -> None:
    failed = [hosts(-0.2, {r: "UP 1/2 L4CON" for r in REPLICAS})]
    _, (promise,) = verdicts(journal(HAPROXY, (1, 13), 0.5, extra=failed))
    assert promise.earliest == STARTUP_EARLIEST and "maybe before the server's first check" in promise.how
    assert haproxy.first_check_passed((FlagsChange(0.0, "chat[0]", "UP 1/2 L4CON"),)) is None
    assert haproxy.first_check_passed((FlagsChange(0.1, "chat[0]", "UP * L7OK"),)) == 0.1


# -- LiteLLM: the rounds the proxy stamped --------------------------------------------------------

def rounds(spans: list[tuple[float, float]]) -> dict[str, Any]:
    return {"type": "gateway.health_rounds", "ts": 19.5, "gateway": "litellm",
            "rounds": [{"round": i, "started": T0 + s, "written": T0 + w} for i, (s, w) in enumerate(spans)]}


def steady(length: float, late: float, until: float = 19.0, slow: tuple[float, float] = (0.0, 0.0)) -> list[tuple[float, float]]:
    """Rounds from 1.5s before the load: ``length`` each (``slow[1]`` for those starting in ``slow[0]``..+3s),
    each starting interval (1s) + ``late`` after the previous one's write."""
    out, t = [], -1.5
    while t < until:
        n = slow[1] if slow[0] <= t < slow[0] + 3 else length
        out.append((t, t + n))
        t = t + n + 1.0 + late
    return out


def test_litellm_window_from_the_stamped_rounds_fails_outside_it() -> None:
    spans = steady(0.2, 0.1, slow=(4.0, 0.6))  # rounds under the fault are slower (a check runs to its timeout)
    passed, (detection, recovery) = verdicts(journal(LITELLM, (4, 11), 1.0, 1.0, extra=[rounds(spans)]))
    assert passed == [True, True]
    assert isinstance(detection, Window) and isinstance(recovery, Window)
    assert detection.latest == pytest.approx(0.6 + 1.0 + 0.1 + 0.6)  # R + I + L + R, R the longest from the fault on
    assert recovery.latest == pytest.approx(0.2 + 1.0 + 0.1 + 0.2)  # after the fault, rounds were short again
    assert detection.latest < 2 * litellm.round_length(0.5) + 1.0  # narrower than the nominal round's
    late = detection.upper + 0.05
    assert verdicts(journal(LITELLM, (4, 11), late, 1.0, extra=[rounds(spans)]))[0] == [False, True]
    assert verdicts(journal(LITELLM, (4, 11), 1.0, recovery.upper + 0.05, extra=[rounds(spans)]))[0] == [True, False]
    # Without the stamps, the nominal round: the same late detection passes.
    assert verdicts(journal(LITELLM, (4, 11), late, 1.0))[0] == [True, True]


def test_litellm_rounds_before_the_fault_do_not_count_and_a_late_start_does() -> None:
    spans = [(-1.5, 1.0)] + [(2.0 + 1.1 * i, 2.1 + 1.1 * i) for i in range(14)]  # a 2.5s start-up round first
    spans.append((spans[-1][1] + 1.4, spans[-1][1] + 1.5))  # the last round started 0.4s late
    _, (detection, _) = verdicts(journal(LITELLM, (4, 11), 1.0, 1.0, extra=[rounds(spans)]))
    assert detection.latest == pytest.approx(0.1 + 1.0 + 0.4 + 0.1)
    assert "the longest of the" in detection.how and "0.4s late" in detection.how


def test_litellm_without_stamped_rounds_after_the_fault_the_nominal_round() -> None:
    _, (detection, _) = verdicts(journal(LITELLM, (4, 11), 1.0, 1.0, extra=[rounds([(-1.5, -1.0)])]))
    r = litellm.round_length(0.5)
    assert detection.latest == pytest.approx(r + 1.0 + r)
    assert f"{litellm.ROUND_OVERHEAD:g}s round overhead" in detection.how


def test_litellm_no_verdict_before_the_first_round_that_ends_after_the_fault() -> None:
    # Rounds of 0.1s; the last before the fault (at 4s) wrote at 2.7s, the next started late and wrote its verdicts
    # at 5.5s, 1.5s after the fault began: no verdict can change before (one is written only when a round ends).
    spans = [(s, s + 0.1) for s in (-1.0, 0.2, 1.4, 2.6)] + [(5.4, 5.5)] + [(6.6 + 1.1 * i, 6.7 + 1.1 * i) for i in range(11)]
    events = journal(LITELLM, (4, 11), 1.2, 1.0, extra=[rounds(spans)])
    passed, (detection, _) = verdicts(events)
    assert isinstance(detection, Window) and passed == [True, True]
    assert detection.earliest == pytest.approx(1.5 - litellm.PROBE_DELAY)  # the write at 5.5s, less the observer's P
    assert "no verdict before 1.5s" in detection.how
    assert verdicts(journal(LITELLM, (4, 11), detection.lower - 0.05, 1.0, extra=[rounds(spans)]))[0] == [False, True]
    assert verdicts(journal(LITELLM, (4, 11), detection.lower + 0.05, 1.0, extra=[rounds(spans)]))[0] == [True, True]


# -- the run journals the rounds once, at the end of the load ---------------------------------

class _Proxy:
    kind = "litellm"

    def __init__(self, rounds: list[dict[str, Any]] | None, fails: bool = False) -> None:
        self.rounds, self.fails = rounds, fails

    def health_rounds(self) -> list[dict[str, Any]] | None:
        if self.fails:
            raise StackError("the LiteLLM proxy's /chaosgate/health_rounds did not answer: refused")
        return self.rounds


class _Envoy:
    kind = "envoy"


@pytest.mark.parametrize(("gateway", "written"), [
    (_Proxy([{"round": 3, "started": 1.0, "written": 1.2}]), [("gateway.health_rounds", 1)]),
    (_Proxy(None), []),  # no background checks
    (_Proxy(None, fails=True), [("warning", 0)]),  # a dead proxy: the windows fall back to the nominal round
    (_Envoy(), []),  # no rounds to list
])
def test_the_run_journals_the_gateways_rounds(tmp_path: Path, gateway: object, written: list[tuple[str, int]]) -> None:
    journal = JournalWriter(tmp_path / "journal.jsonl")
    journal.write("run.started", text="name: t", file="x.yaml")
    _journal_health_rounds(SimpleNamespace(gateway=gateway), journal)  # type: ignore[arg-type]
    journal.close()
    events = read_journal(tmp_path / "journal.jsonl")[1:]
    assert [(e["type"], len(e.get("rounds", []))) for e in events] == written
    if written == [("warning", 0)]:
        assert "rounds are not known" in events[0]["message"]


def test_malformed_rounds_and_hosts_say_nothing_and_raise_nothing() -> None:
    timeline = build_timeline(journal(HAPROXY, (1, 13), None, extra=[
        {"type": "hosts", "ts": 0.1, "hosts": ["not", "a", "mapping"]},
        {"type": "hosts", "ts": 0.2, "hosts": {ADDRESS["chat[0]"]: 3}},
        {"type": "gateway.health_rounds", "ts": 19.0, "rounds": [
            "x", {"started": "soon", "written": None}, {"started": T0 + 1, "written": "later"},
            {"round": True, "started": T0 + 2, "written": T0 + 2.5}]}]))
    assert timeline.flags == {}
    assert timeline.health_rounds == [HealthRound(None, pytest.approx(2.0), pytest.approx(2.5))]
