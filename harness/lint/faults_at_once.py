"""Which replicas of a pool the scenario's faults break at the same moment (the worst moment)."""

from __future__ import annotations

from dataclasses import dataclass

from harness.faults import Fault
from harness.scenario import Scenario
from harness.targets import resolve, split_target


@dataclass(frozen=True)
class Broken:
    """At ``at`` seconds, ``faults`` together break ``replicas`` of ``pool`` (of ``size``)."""

    pool: str
    size: int
    at: float
    replicas: frozenset[str]
    faults: tuple[Fault, ...]

    @property
    def healthy_percent(self) -> float:
        return (self.size - len(self.replicas)) / self.size * 100

    @property
    def labels(self) -> str:
        return ", ".join(f.label for f in self.faults)


def worst_moments(scenario: Scenario) -> list[Broken]:
    """Per pool, the moment the most of its replicas are under a fault at once (first such moment)."""
    worst: dict[str, Broken] = {}
    for fault in sorted(scenario.faults, key=lambda f: f.at):
        pool, _ = split_target(fault.target)
        active = [f for f in scenario.faults if split_target(f.target)[0] == pool
                  and f.at <= fault.at < f.at + f.duration]
        replicas = frozenset(r for f in active for r in resolve(f.target, scenario.pools))
        if pool not in worst or len(replicas) > len(worst[pool].replicas):
            worst[pool] = Broken(pool, scenario.pools[pool], fault.at, replicas, tuple(active))
    return list(worst.values())
