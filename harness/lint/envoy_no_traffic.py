"""Envoy checks every ``no_traffic_interval`` (60s by default) until a cluster has carried traffic,
and the check armed before the first request still waits that long: a fault soon after start-up
(or on a pool the load never reaches) is noticed that late, not within a few intervals."""

from __future__ import annotations

from harness.lint.base import Hit, Trap
from harness.promise import envoy as promise
from harness.promise.window import Window
from harness.scenario import Scenario
from harness.targets import split_target

PATH = ("gateway", "health_check", "no_traffic_interval")


def check(scenario: Scenario) -> list[Hit]:
    hc = scenario.gateway.health_check
    if hc is None or hc.no_traffic_interval <= hc.interval:
        return []
    for fault in sorted(scenario.faults, key=lambda f: f.at):
        pool, _ = split_target(fault.target)
        carries_traffic = pool == scenario.load_pool
        leftover = hc.no_traffic_interval - fault.at
        if carries_traffic and leftover <= hc.interval:
            continue
        window = promise.active_detection(scenario, fault)
        promised = f" (promised detection: {window.text()})" if isinstance(window, Window) else ""
        if carries_traffic:
            why = (f"the check armed before the first request can still be {leftover:g}s away when "
                   f"{fault.label} starts at {fault.at:g}s, not one interval ({hc.interval:g}s)")
        else:
            why = (f"the load never sends traffic to {pool!r}, so every check of it, during "
                   f"{fault.label} too, waits {hc.no_traffic_interval:g}s")
        return [Hit(PATH, f"is {hc.no_traffic_interval:g}s{' (Envoy default)' if 'no_traffic_interval' not in hc.model_fields_set else ''}, "
                    f"longer than the interval: until a cluster has carried traffic Envoy checks only that often; "
                    f"{why}{promised}; set no_traffic_interval equal to interval ({hc.interval:g}s)")]
    return []


TRAP = Trap("envoy.no-traffic-interval", "envoy", "warning",
            "no_traffic_interval longer than the time to the first fault (or a faulted pool without traffic): "
            "detection waits for the no-traffic timer", check)
