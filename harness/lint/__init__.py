"""Configuration traps as a lint: ``chaosgate lint PATH...``, and at the start of every run.

One module per trap (``TRAP``: id, gateway kind, severity, summary, check), one line in ``TRAPS``
per module; ``CHECKS`` are the checks of the scenario itself, whatever its gateway (promises its
expectations cannot use, durations without a unit). ``lint_scenario`` returns the findings for a
scenario of any gateway kind, each located at the scenario field it is about (file:line, as
validation errors are).
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import Problem, ScenarioError
from harness.lint import (
    envoy_flapping,
    envoy_max_ejection,
    envoy_merge_window,
    envoy_no_traffic,
    envoy_panic,
    haproxy_observe_retries,
    haproxy_startup_state,
    litellm_health_endpoint,
    litellm_health_filter,
    litellm_no_health,
    nginx_single_server,
    nginx_worker_state,
    promised_windows,
    unitless_durations,
)
from harness.lint.base import Check, Finding, Hit, Severity, Trap, field_name, locate
from harness.scenario import Scenario
from harness.yaml_source import YamlDocument, load_yaml

TRAPS: list[Trap] = [
    envoy_no_traffic.TRAP,
    envoy_panic.TRAP,
    envoy_max_ejection.TRAP,
    envoy_flapping.TRAP,
    envoy_merge_window.TRAP,
    haproxy_startup_state.TRAP,
    haproxy_observe_retries.TRAP,
    nginx_single_server.TRAP,
    nginx_worker_state.TRAP,
    litellm_no_health.TRAP,
    litellm_health_endpoint.TRAP,
    litellm_health_filter.TRAP,
]


CHECKS: list[Check] = [
    promised_windows.NEVER_UNDER_PROMISED,
    promised_windows.NEVER_AGAINST_A_WINDOW,
    promised_windows.UNOBSERVABLE,
    unitless_durations.CHECK,
]


def traps_for(gateway: str) -> list[Trap]:
    return [trap for trap in TRAPS if trap.gateway == gateway]


def lint_scenario(scenario: Scenario, doc: YamlDocument | None = None, file: str = "") -> list[Finding]:
    """Every trap of the scenario's gateway that bites in it, in registry order."""
    findings: list[Finding] = []
    for trap in traps_for(scenario.gateway.kind):
        for hit in trap.check(scenario):
            line, column = locate(doc, hit.path)
            findings.append(Finding(trap.id, trap.gateway, trap.severity, file or (doc.file if doc else ""),
                                    line, column, field_name(hit.path), hit.message))
    for check in CHECKS:
        for hit in check.check(scenario, doc):
            line, column = locate(doc, hit.path)
            findings.append(Finding(check.id, scenario.gateway.kind, check.severity, file or (doc.file if doc else ""),
                                    line, column, field_name(hit.path), hit.message))
    return findings


def lint_text(scenario: Scenario, text: str, file: str) -> list[Finding]:
    """``lint_scenario`` with the lines of the scenario's own text."""
    try:
        doc = load_yaml(text, file)
    except ScenarioError:
        doc = None
    return lint_scenario(scenario, doc, file)


def lint_file(path: Path, scenario: Scenario) -> list[Finding]:
    return lint_text(scenario, path.read_text(encoding="utf-8"), str(path))


def as_problems(findings: list[Finding]) -> list[Problem]:
    """Findings as validation problems (``--strict``: a trap is an error)."""
    return [Problem(f.file, f.line, f.column, f.field, f"[{f.trap}] {f.message}") for f in findings]


__all__ = ["CHECKS", "TRAPS", "Check", "Finding", "Hit", "Severity", "Trap", "as_problems", "lint_file", "lint_scenario", "lint_text",
           "traps_for"]
