"""Envoy 1.40 ejects a host only if (ejected + 1) / hosts <= max_ejection_percent (10% by
default): with fewer than ten replicas the default ejects none of them (measured: with 3 hosts,
27 detected ejections, 43 overflows, nothing ejected)."""

from __future__ import annotations

from harness.lint.base import Hit, Trap
from harness.scenario import Scenario
from harness.targets import resolve, split_target

PATH = ("gateway", "outlier_detection", "max_ejection_percent")


def check(scenario: Scenario) -> list[Hit]:
    od = scenario.gateway.outlier_detection
    if od is None:
        return []
    hits: list[Hit] = []
    for upstream in scenario.upstreams:
        allowed = od.max_ejection_percent * upstream.replicas // 100
        if allowed == 0:
            hits.append(Hit(PATH, f"is {od.max_ejection_percent}%: with {upstream.replicas} replicas in "
                            f"{upstream.name!r} Envoy ejects none of them (ejecting one is "
                            f"{100 / upstream.replicas:.0f}%), so outlier detection does nothing there; "
                            f"set it to at least {-(-100 // upstream.replicas)}"))
            continue
        for fault in scenario.faults:
            pool, _ = split_target(fault.target)
            broken = len(resolve(fault.target, scenario.pools))
            if pool == upstream.name and broken > allowed:
                hits.append(Hit(PATH, f"is {od.max_ejection_percent}%: Envoy ejects at most {allowed} of the "
                                f"{upstream.replicas} replicas of {pool!r}, and {fault.label} breaks {broken}; "
                                "the rest keep getting traffic"))
                break
    return hits


TRAP = Trap("envoy.max-ejection-percent", "envoy", "error",
            "max_ejection_percent that can eject nothing (or fewer replicas than a fault breaks) with the "
            "pool's replica count", check)
