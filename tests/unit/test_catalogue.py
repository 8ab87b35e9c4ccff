"""The one catalogue of causes (harness/catalogue.py): every fault and expectation kind maps to its
entries, the report's advice and diagnose use the same names, and diagnose's accuracy cases agree."""

from __future__ import annotations

import importlib

import pytest
from pydantic import ValidationError

from harness.catalogue import (BASELINE_CAUSES, CAUSES, EXPECTATION_CAUSES, FAULT_CAUSES, HEALTHY, ROWS,
                               diagnosable, fault_causes)
from harness.diagnose import accuracy
from harness.expectations import EXPECTATIONS
from harness.expectations.diagnosis import Diagnosis
from harness.faults import FAULTS


def test_every_fault_and_expectation_kind_maps_to_catalogue_entries() -> None:
    missing = sorted(set(FAULTS) - set(FAULT_CAUSES)) + sorted(set(EXPECTATIONS) - set(EXPECTATION_CAUSES))
    assert not missing, f"add these kinds to harness/catalogue.py FAULT_CAUSES/EXPECTATION_CAUSES: {missing}"
    for key, names in [*FAULT_CAUSES.items(), *EXPECTATION_CAUSES.items(), ("baseline", BASELINE_CAUSES)]:
        assert names and set(names) <= set(CAUSES), f"{key}: {sorted(set(names) - set(CAUSES))} not in CAUSES"
        assert key.split(":")[0] in {*FAULTS, *EXPECTATIONS, "baseline"}, f"{key} is no fault or expectation kind"


def test_every_cause_has_rows_a_problem_and_a_next_step_and_every_row_is_used() -> None:
    for cause in CAUSES.values():
        assert cause.problem and cause.next_step and set(cause.rows) <= set(ROWS)
        assert cause.rows or cause.name == "not_loopback"
    used = {row for cause in CAUSES.values() for row in cause.rows}
    assert used == set(ROWS), f"rows no cause belongs to: {sorted(set(ROWS) - used)}"


def test_advice_and_diagnose_use_the_same_catalogue() -> None:
    modules = ["harness.diagnose", "harness.diagnose.walk", "harness.diagnose.render", "harness.report.advice"]
    for name in modules:
        module = importlib.import_module(name)
        assert module.CAUSES is CAUSES, f"{name} has a catalogue of its own"
        assert not {n for n in vars(module) if n.endswith("_CAUSES")} - {"BASELINE_CAUSES", "EXPECTATION_CAUSES"}, name
    assert accuracy.HEALTHY == HEALTHY
    # Every cause but 'not_loopback' (an address diagnose refuses to probe) is advised somewhere,
    # so a cause diagnosed in a run has its entry in the report under the same name.
    advised = {n for names in [*FAULT_CAUSES.values(), *EXPECTATION_CAUSES.values(), BASELINE_CAUSES] for n in names}
    assert set(CAUSES) - advised == {"not_loopback"}


@pytest.mark.parametrize("case", [c for c in accuracy.CASES if c.expected != HEALTHY], ids=lambda c: c.label)
def test_the_cause_diagnose_names_for_a_fault_is_among_those_its_report_advises(case: accuracy.Case) -> None:
    assert CAUSES[case.expected].diagnosed
    advised = fault_causes(case.fault["kind"], case.fault.get("mode"))
    assert advised is not None and case.expected in advised, (
        f"diagnose names {case.expected} for {case.label}, but the report advises {advised}")


def test_a_diagnosis_expectation_takes_only_causes_diagnose_names() -> None:
    assert diagnosable("tls_expired") == "tls_expired" and diagnosable(HEALTHY) == HEALTHY
    with pytest.raises(ValueError, match="diagnose never names it"):
        diagnosable("load_balancing")
    with pytest.raises(ValueError, match=r"unknown cause 'tls_expird' \(did you mean tls_expired"):
        diagnosable("tls_expird")
    with pytest.raises(ValidationError, match="'crashed' is a row of Table 1 .*, not a cause; diagnose names "
                                              "connection_refused or connection_closed or connection_reset"):
        Diagnosis.model_validate({"kind": "diagnosis", "target": "chat[0]", "cause": "crashed"})
    with pytest.raises(ValidationError, match="unknown cause 'xyzzy'; expected one of dns_failure, "):
        Diagnosis.model_validate({"kind": "diagnosis", "target": "chat[0]", "cause": "xyzzy"})
