"""LiteLLM's health check is a chat completion, not a GET of a health path: a fault that fails only
the replicas' health endpoint (llm_fault health_fail) is invisible to it."""

from __future__ import annotations

from harness.lint.base import Hit, Trap
from harness.scenario import Scenario


def check(scenario: Scenario) -> list[Hit]:
    for i, fault in enumerate(scenario.faults):
        if fault.kind == "llm_fault" and getattr(fault, "mode", None) == "health_fail":
            return [Hit(("faults", i, "mode"), f"{fault.label} fails only the replicas' /health endpoint: "
                        "LiteLLM's health check is a chat completion, so it never sees this fault")]
    return []


TRAP = Trap("litellm.health-endpoint", "litellm", "warning",
            "a fault of the health endpoint only: LiteLLM's checks are chat completions and never see it", check)
