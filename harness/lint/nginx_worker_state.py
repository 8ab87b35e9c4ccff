"""Without a shared memory ``zone`` each nginx worker process keeps its own failure counts: a
broken server is marked down once per worker, and the workers that have not yet seen max_fails
failures keep sending it requests (nginx mailing list 2010-April/019873).

It bites when the load's connections reach several workers, which ``gateway.nginx.reuseport`` makes
likely (scenarios/traps/nginx-worker-state.yaml: 4 workers, max_fails 3, 9-12 failed requests instead
of 3, some seconds after nginx first logged the server disabled; docs/lint.md)."""

from __future__ import annotations

from harness.lint.base import Hit, Trap
from harness.scenario import Scenario


def check(scenario: Scenario) -> list[Hit]:
    options = scenario.gateway.nginx
    if options.worker_processes > 1 and not options.shared_zone:
        return [Hit(("gateway", "nginx", "shared_zone"),
                    f"is false with worker_processes {options.worker_processes}: each worker counts failures on its "
                    "own, so a broken server is marked down once per worker and keeps getting requests from the "
                    "workers that have not seen max_fails failures yet; set shared_zone: true")]
    return []


TRAP = Trap("nginx.worker-state", "nginx", "warning",
            "several workers without a shared zone: each worker marks a broken server down on its own", check)
