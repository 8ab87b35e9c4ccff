"""nginx ignores max_fails and fail_timeout in an upstream group of one server (``peers->single``):
that server is never marked unavailable, so clients get its errors (502) for as long as it is
broken, and nothing routes around it."""

from __future__ import annotations

from harness.lint.base import Hit, Trap
from harness.scenario import Scenario
from harness.targets import split_target


def check(scenario: Scenario) -> list[Hit]:
    faulted = {split_target(f.target)[0] for f in scenario.faults}
    return [Hit(("upstreams", i, "replicas"),
                f"is 1: nginx ignores max_fails and fail_timeout in a group of one server, so {pool.name!r} is "
                "never marked down and clients get its errors (502) for as long as it is broken; "
                "give it two or more replicas to route around a broken one")
            for i, pool in enumerate(scenario.upstreams) if pool.replicas == 1 and pool.name in faulted]


TRAP = Trap("nginx.single-server", "nginx", "warning",
            "an upstream group of one server: nginx never marks it down", check)
