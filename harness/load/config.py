"""What the load process needs to know, passed to it as JSON on its command line."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pydantic import BaseModel

if TYPE_CHECKING:  # not at run time: the load processes import this, and the scenario model costs 0.3 s
    from harness.scenario import Scenario


class LoadConfig(BaseModel):
    """A scenario's ``load`` block resolved to a gateway address."""

    host: str                     # the gateway's base URL ('' until the go line says it: LoadGenerator.go)
    base_path: str
    users: int
    spawn_rate: float
    duration: float
    mix: dict[str, float]
    wait: float
    max_tokens: int
    request_timeout: float
    seed: int
    mcp_users: int = 0            # users of the mcp persona (harness/load/mcp_worker.py); `users` are Locust's
    mcp_path: str | None = None   # the MCP endpoint through the gateway, e.g. /tools/mcp
    model: str = "fake-model"     # the chat requests' model: what the gateway routes on (LiteLLM: a model group)
    anthropic_path: str | None = None  # the anthropic pool through the gateway ('' or /<pool>); None: no such pool
    anthropic_model: str = "claude-fake"  # the anthropic persona's model

    @classmethod
    def for_scenario(cls, scenario: Scenario, gateway_url: str, model: str = "fake-model") -> LoadConfig:
        load = scenario.load
        first_pool = scenario.upstreams[0].name
        mix = {str(kind): weight for kind, weight in load.mix.items()}
        chat_users, mcp_users = split_users(load.users, mix)
        mcp_pool = scenario.mcp_load_pool
        anthropic_pool = scenario.anthropic_load_pool
        anthropic_path = None if anthropic_pool is None else "" if anthropic_pool == first_pool else f"/{anthropic_pool}"
        return cls(host=gateway_url, base_path="" if scenario.load_pool == first_pool else f"/{scenario.load_pool}",
                   anthropic_path=anthropic_path,
                   users=chat_users, spawn_rate=load.spawn_rate, duration=load.duration, mix=mix,
                   wait=load.wait, max_tokens=load.max_tokens, request_timeout=load.request_timeout,
                   seed=scenario.seed, mcp_users=mcp_users,
                   mcp_path=f"/{mcp_pool}/mcp" if mcp_users and mcp_pool else None, model=model)

    def aimed(self, line: str) -> LoadConfig:
        """The config with the target the harness sends on the go line (``{"host": ..., "model": ...}``: the load
        process starts before the gateway's address is known); a bare ``go`` keeps the config as it is."""
        try:
            target = json.loads(line)
        except ValueError:
            return self
        if not isinstance(target, dict):
            return self
        return self.model_copy(update={key: str(target[key]) for key in ("host", "model") if isinstance(target.get(key), str)})

    def prompt_words(self) -> list[str]:
        """Prompt vocabulary from Faker, seeded, so every run sends the same prompts."""
        from faker import Faker

        fake = Faker()
        fake.seed_instance(self.seed)
        return fake.words(nb=500)


def split_users(users: int, mix: Mapping[str, float]) -> tuple[int, int]:
    """Locust's users (chat kinds) and the mcp persona's, in proportion to their weights in the mix;
    a persona with a weight above 0 gets at least one user."""
    mcp = mix.get("mcp", 0.0)
    chat = sum(weight for kind, weight in mix.items() if kind != "mcp")
    if mcp <= 0:
        return users, 0
    if chat <= 0:
        return 0, users
    mcp_users = min(users - 1, max(1, round(users * mcp / (mcp + chat)))) if users > 1 else 1
    return max(1, users - mcp_users), mcp_users
