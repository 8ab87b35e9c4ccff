"""One answer to "is this time inside the promised window" (harness/promise/window.place), used alike by
the verdicts, `chaosgate compare`, the report and `python -m harness.promise.check`."""

from __future__ import annotations

import pytest

from harness.compare.render import kept_text
from harness.compare.table import FaultRow, kept
from harness.promise.check import inside
from harness.promise.window import EARLY_SLACK, Never, Promise, Unknown, Window, place, promise_from_json

WINDOW = Window(1.0, 2.0, "formula", margin=0.2)   # inside: [0.98, 2.2]
NEVER = Never("nothing checks")


@pytest.mark.parametrize(("promise", "measured", "available", "held", "where"), [
    (WINDOW, 1.5, 6.0, True, "inside"),
    (WINDOW, 1.0 - EARLY_SLACK, 6.0, True, "inside"),       # the early slack
    (WINDOW, 2.2, 6.0, True, "inside"),                     # latest + margin
    (WINDOW, 0.9, 6.0, False, "early"),
    (WINDOW, 2.3, 6.0, False, "late"),
    (WINDOW, 2.3, 1.0, False, "late"),                      # a time measured is judged, whatever the run's length
    (WINDOW, None, 6.0, False, "missed"),                   # never acted, though the run gave it the whole window
    (WINDOW, None, 2.2, False, "missed"),
    (WINDOW, None, 2.0, None, "not observed"),              # the run ended before the window did: too short to tell
    (WINDOW, None, None, None, "nothing to measure"),       # e.g. nothing was ejected, so nothing to readmit
    (NEVER, None, 6.0, True, "never, as promised"),
    (NEVER, None, None, True, "never, as promised"),
    (NEVER, 1.0, 6.0, False, "acted, though never"),
    (Unknown("no formula"), 1.0, 6.0, None, "no promise"),
    (None, None, 6.0, None, "no promise"),
])
def test_place_says_where_a_time_lies(promise: Promise | None, measured: float | None, available: float | None,
                                      held: bool | None, where: str) -> None:
    placement = place(promise, measured, available)
    assert (placement.held, placement.where) == (held, where)
    # the three former copies answer the same, because they call it
    assert kept(promise, measured, available) is held
    as_json = None if promise is None else promise.to_json()
    assert inside(measured, as_json, available) == {True: "yes", False: "NO", None: "-"}[held]
    if isinstance(promise, Window) and measured is not None:
        assert promise.contains(measured) is (held is True)


def test_a_promise_survives_its_json() -> None:
    for promise in (WINDOW, NEVER, Unknown("x")):
        assert promise_from_json(promise.to_json()) == promise
    assert promise_from_json(None) is None


def test_not_observed_says_when_the_load_ended_and_what_the_promise_allows() -> None:
    placement = place(Window(1.0, 9.0, "formula", margin=0.2), None, 3.0)
    assert placement.not_observed("the load", "the fault") == \
        "not observed: the load ended 3s after the fault, the promise allows up to 9.2s"


def row(detected: float | None, recovered: float | None, after_fault: float) -> FaultRow:
    return FaultRow(label="f", kind="reset_peer", target="chat[0]", detected_after=detected, recovered_after=recovered,
                    promised_detection=WINDOW, promised_recovery=Window(1.0, 9.0, "formula", margin=0.2), errors={},
                    requests=10, to_broken_after_detection=0, all_down=None, duration=6.0, after_fault=after_fault)


def test_compare_says_not_observed_instead_of_outside_when_the_load_ended_first() -> None:
    short = row(1.5, None, 3.0)
    assert short.recovery_kept is None
    assert kept_text(short, "recovery") == \
        "not observed: the load ended 3s after the fault, the promise allows up to 9.2s"
    long_enough = row(1.5, None, 12.0)
    assert long_enough.recovery_kept is False and kept_text(long_enough, "recovery") == "OUTSIDE"
    never_detected = row(None, None, 12.0)   # nothing to readmit: n/a, the detection is what was missed
    assert kept_text(never_detected, "detection") == "OUTSIDE" and kept_text(never_detected, "recovery") == "n/a"


def test_the_comparison_pages_say_not_observed() -> None:
    from harness.compare.render import to_html, to_markdown
    from harness.compare.table import ComparisonTable, GatewayRow

    gateway_row = GatewayRow(gateway="litellm", status="FAILED", faults=[row(1.5, None, 3.0)])
    table = ComparisonTable("t", "t.yaml", "local", [gateway_row])
    expected = "not observed: the load ended 3s after the fault, the promise allows up to 9.2s"
    assert expected in to_markdown(table) and "OUTSIDE" not in to_markdown(table)
    page = to_html(table)
    assert f'<span class="kept-na">{expected}</span>' in page
    assert table.to_json()["gateways"][0]["faults"][0]["recovery_where"] == "not observed"
