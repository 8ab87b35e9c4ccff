"""What the load process needs to know, passed to it as JSON on its command line."""

from __future__ import annotations

from pydantic import BaseModel

from harness.scenario import Scenario


class LoadConfig(BaseModel):
    """A scenario's ``load`` block resolved to a gateway address."""

    host: str
    base_path: str
    users: int
    spawn_rate: float
    duration: float
    mix: dict[str, float]
    wait: float
    max_tokens: int
    request_timeout: float
    seed: int

    @classmethod
    def for_scenario(cls, scenario: Scenario, gateway_url: str) -> LoadConfig:
        load = scenario.load
        first_pool = scenario.upstreams[0].name
        return cls(host=gateway_url, base_path="" if scenario.load_pool == first_pool else f"/{scenario.load_pool}",
                   users=load.users, spawn_rate=load.spawn_rate, duration=load.duration, mix={str(kind): weight for kind, weight in load.mix.items()},
                   wait=load.wait, max_tokens=load.max_tokens, request_timeout=load.request_timeout,
                   seed=scenario.seed)

    def prompt_words(self) -> list[str]:
        """Prompt vocabulary from Faker, seeded, so every run sends the same prompts."""
        from faker import Faker

        fake = Faker()
        fake.seed_instance(self.seed)
        return fake.words(nb=500)
