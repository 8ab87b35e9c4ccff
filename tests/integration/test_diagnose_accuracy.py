"""The accuracy suite of `chaosgate diagnose` (harness/diagnose/accuracy.py): every fault kind the
harness has, injected one after another into one real stack, must be diagnosed as its expected
cause. `bench/diagnose_accuracy.py` runs the same suite and writes the table to docs/diagnose.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.diagnose.accuracy import CASES, HEALTHY, MISCONFIGURED, confusion_table, run_suite
from harness.catalogue import CAUSES
from harness.faults import FAULTS

pytestmark = pytest.mark.integration


def test_cases_cover_every_fault_kind_and_mode() -> None:
    """A new fault kind (or mode) without a case here fails, so the suite stays complete."""
    covered = {(c.fault["kind"], c.fault.get("mode")) for c in CASES}
    for kind, model in FAULTS.items():
        variants = getattr(model, "variants", ()) or ()
        modes = [v.model_fields["mode"].annotation.__args__[0] for v in variants]  # type: ignore[union-attr]
        if kind == "cert":
            modes = list(model.model_fields["mode"].annotation.__args__)  # type: ignore[union-attr]
        for mode in modes or [None]:
            assert (kind, mode) in covered, f"no accuracy case for fault {kind} mode {mode}"
    assert all(c.expected == HEALTHY or c.expected in CAUSES for c in CASES)


def test_every_fault_kind_is_diagnosed_right(tmp_path: Path) -> None:
    outcomes = run_suite(tmp_path)
    assert len(outcomes) == len(CASES) + len(MISCONFIGURED)
    misses = [o for o in outcomes if not o.correct]
    assert not misses, confusion_table(outcomes)
