"""LiteLLM's background health checks take a deployment out only with health-check routing
(``enable_health_check_routing``, false by default in LiteLLM's own config): without it they only
report (the proxy's /health lists the failures) and the router keeps sending traffic to it."""

from __future__ import annotations

from harness.lint.base import Hit, Trap
from harness.scenario import Scenario


def check(scenario: Scenario) -> list[Hit]:
    g = scenario.gateway
    if g.health_check is not None and not g.litellm.health_check_routing:
        return [Hit(("gateway", "litellm", "health_check_routing"), "background health checks without health-check "
                    "routing: LiteLLM's checks then only report and take no deployment out (enable_health_check_routing "
                    "is false unless set); set general_settings.enable_health_check_routing: true "
                    "(gateway.litellm.health_check_routing)")]
    return []


TRAP = Trap("litellm.check-routing-off", "litellm", "error",
            "background health checks without health-check routing: they take no deployment out", check)
