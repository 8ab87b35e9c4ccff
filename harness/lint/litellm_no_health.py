"""LiteLLM with neither background health checks nor cooldowns (outlier_detection) never takes a
deployment out of rotation: the adapter renders ``disable_cooldowns: true`` and no checks."""

from __future__ import annotations

from harness.lint.base import Hit, Trap
from harness.scenario import Scenario

NEEDS_DETECTION = ("upstream_unhealthy", "upstream_healthy", "no_traffic_to")


def check(scenario: Scenario) -> list[Hit]:
    g = scenario.gateway
    if g.health_check is None and g.outlier_detection is None and any(
            e.kind in NEEDS_DETECTION for e in scenario.expect):
        return [Hit(("gateway",), "sets neither health_check nor outlier_detection: LiteLLM then never takes a "
                    "deployment out of rotation (cooldowns are disabled), so clients see every failure; set "
                    "outlier_detection (cooldowns) or health_check (background checks)")]
    return []


TRAP = Trap("litellm.no-health", "litellm", "error",
            "neither health checks nor cooldowns: LiteLLM never takes a deployment out of rotation", check)
