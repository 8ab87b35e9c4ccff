"""Configuration traps as a lint: ``chaosgate lint PATH...``, and at the start of every run.

One module per trap (``TRAP``: id, gateway kind, severity, summary, check), one line in ``TRAPS``
per module; ``CHECKS`` are the checks of the scenario itself, whatever its gateway (promises its
expectations cannot use, durations without a unit). ``lint_scenario`` returns the findings for a
scenario of any gateway kind, each located at the scenario field it is about (file:line, as
validation errors are).
"""

from __future__ import annotations

import re
from dataclasses import replace
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
    litellm_check_routing,
    litellm_health_endpoint,
    litellm_health_filter,
    litellm_no_health,
    nginx_single_server,
    nginx_worker_state,
    portkey_no_health,
    portkey_retry_same_target,
    portkey_timeout_not_retried,
    promised_windows,
    unitless_durations,
)
from harness.lint.base import Check, Finding, Hit, Severity, Trap, field_name, locate
from harness.own_config import READERS, for_pool, pool_block, read_native
from harness.scenario import Scenario
from harness.targets import split_target
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
    litellm_check_routing.TRAP,
    portkey_retry_same_target.TRAP,
    portkey_timeout_not_retried.TRAP,
    portkey_no_health.TRAP,
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
    if scenario.gateway.config is not None:
        findings += _own_file_traps(scenario, doc, file)
    for trap in [] if scenario.gateway.config is not None else traps_for(scenario.gateway.kind):
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


def _own_file_traps(scenario: Scenario, doc: YamlDocument | None, file: str) -> list[Finding]:
    """The traps of the user's own gateway file (``gateway.config``), block by bound block: a gateway
    setting is located in that file (where it is set, or the block's line when a default bites)."""
    findings: dict[tuple[str, str, int | None, str], Finding] = {}
    for pool in scenario.pools:
        block = pool_block(scenario, pool)
        if block is None:
            continue
        own = for_pool(scenario, pool)  # the block's settings, and the faults on its pool only
        own = own.model_copy(update={"faults": [f for f in own.faults if split_target(f.target)[0] == pool]})
        for trap in traps_for(scenario.gateway.kind):
            for hit in trap.check(own):
                spelling = getattr(READERS.get(scenario.gateway.kind), "spelling", {}).get(hit.path)
                message = f"{hit.message} (in this file: {spelling})" if spelling else hit.message
                if hit.path[:1] == ("gateway",):
                    source = block.locate(hit.path)
                    finding = Finding(trap.id, trap.gateway, trap.severity, source.file, source.line, None,
                                      source.setting, message)
                else:
                    line, column = locate(doc, hit.path)
                    finding = Finding(trap.id, trap.gateway, trap.severity, file or (doc.file if doc else ""),
                                      line, column, field_name(hit.path), hit.message)
                findings.setdefault((finding.trap, finding.file, finding.line, finding.message), finding)
    return list(findings.values())


POOL_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
FIRST_FAULT_AT, FAULT_SPACING, FAULT_LENGTH = 10.0, 20.0, 10.0  # the faults `chaosgate lint FILE` supposes
# per block, one after the other on its first endpoint: refused connections, then connections reset mid-answer
SUPPOSED_FAULTS = (("down", "down"), ("reset_peer", "reset"))


def lint_native(path: Path, kind: str) -> list[Finding]:
    """``chaosgate lint FILE`` for a gateway's own file, with no scenario: every block that has endpoints is a
    pool of as many replicas, the load goes to the first, and each pool's first endpoint goes down for 10s
    (the first at 10s after start, the next 20s later, ...): the traps that bite then, located in the file."""
    config = read_native(kind, path.resolve())
    pools: list[dict[str, object]] = []
    faults: list[dict[str, object]] = []
    bind: dict[str, str] = {}
    for i, (name, block) in enumerate(config.blocks.items()):
        if not block.endpoints:
            continue
        pool = name if POOL_NAME.match(name) and name not in bind.values() else f"pool{i}"
        bind[name] = pool
        pools.append({"name": pool, "replicas": min(len(block.endpoints), 16)})
        for fault_kind, what in SUPPOSED_FAULTS:
            faults.append({"kind": fault_kind, "name": f"{pool}-first-endpoint-{what}", "target": f"{pool}[0]",
                           "at": FIRST_FAULT_AT + FAULT_SPACING * len(faults), "for": FAULT_LENGTH})
    if not pools:
        return []
    duration = FIRST_FAULT_AT + FAULT_SPACING * len(faults)
    scenario = Scenario.model_validate({"name": "lint", "upstreams": pools, "load": {"duration": duration},
                                        "faults": faults,
                                        "gateway": {"kind": kind, "config": str(path.resolve()), "bind": bind}})
    traps = {trap.id for trap in TRAPS}  # the checks of a scenario would be about the supposed one
    return [replace(f, file=str(path)) if f.file == str(path.resolve()) else f
            for f in lint_scenario(scenario, None, str(path)) if f.trap in traps]


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


__all__ = ["CHECKS", "TRAPS", "Check", "Finding", "Hit", "Severity", "Trap", "as_problems", "lint_file", "lint_native", "lint_scenario", "lint_text",
           "traps_for"]
