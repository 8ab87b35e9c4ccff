"""When LiteLLM's background checks fail every deployment, it bypasses its health filter and routes
to all of them: without cooldowns, clients get the upstream's error (500 'Connection error.'), not
429 'No deployments available'."""

from __future__ import annotations

from harness.lint.base import Hit, Trap
from harness.scenario import Scenario


def check(scenario: Scenario) -> list[Hit]:
    g = scenario.gateway
    if g.health_check is not None and g.outlier_detection is None and any(
            e.kind == "all_down_response" for e in scenario.expect):
        return [Hit(("gateway", "health_check"), "without outlier_detection, as the only mechanism for "
                    "all_down_response: when LiteLLM's checks fail every deployment it bypasses its health filter "
                    "and routes to all of them, so clients get the upstream's error (500 'Connection error.'), "
                    "not 429 'No deployments available'; set outlier_detection to get the cooldown answer")]
    return []


TRAP = Trap("litellm.health-filter-bypass", "litellm", "warning",
            "health checks without cooldowns and an all-down expectation: LiteLLM routes to every deployment "
            "when all fail their checks", check)
