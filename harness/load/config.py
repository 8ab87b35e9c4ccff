"""What the load process needs to know, passed to it as JSON on its command line."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
    # What the gateway asks of the load (harness/gateways/base.py LoadTarget, sent on the go line): headers for every
    # request, and the response header naming the target that served, its values mapped to replica addresses.
    headers: dict[str, str] = {}
    upstream_header: str | None = None
    upstreams: dict[str, str] = {}
    # Distributed load (harness/load/master.py, docs/distributed.md): with workers or remote_workers above 0 the
    # chat personas run under a Locust master that starts `workers` local worker processes and waits for
    # `remote_workers` more (chaosgate worker --master HOST:PORT) at most join_timeout seconds.
    workers: int = 0
    remote_workers: int = 0
    master_bind: str = "127.0.0.1"
    master_port: int = 0           # 0: a free port, announced on the master's "listening" line
    join_timeout: float = 30.0
    max_clock_offset: float = 0.1  # seconds; a worker's measured |offset| above it fails the run (clock.py)

    @property
    def distributed(self) -> bool:
        """Whether the chat personas run under a Locust master (harness/load/master.py)."""
        return self.workers + self.remote_workers > 0

    @classmethod
    def for_scenario(cls, scenario: Scenario, gateway_url: str, model: str = "fake-model",
                     distribution: Distribution | None = None) -> LoadConfig:
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
                   mcp_path=f"/{mcp_pool}/mcp" if mcp_users and mcp_pool else None, model=model,
                   **(distribution or Distribution()).settings(scenario))

    def aimed(self, line: str) -> LoadConfig:
        """The config with the target the harness sends on the go line (``{"host": ..., "model": ...}``, and the
        gateway's ``headers``, ``upstream_header``, ``upstreams`` when it has them: the load process starts before
        the gateway's address is known); a bare ``go`` keeps the config as it is."""
        try:
            target = json.loads(line)
        except ValueError:
            return self
        if not isinstance(target, dict):
            return self
        update: dict[str, Any] = {key: str(target[key]) for key in ("host", "model") if isinstance(target.get(key), str)}
        for key in ("base_path", "anthropic_path"):
            if isinstance(target.get(key), str):
                update[key] = target[key]
        for key in ("headers", "upstreams"):
            if isinstance(target.get(key), dict):
                update[key] = {str(k): str(v) for k, v in target[key].items()}
        if isinstance(target.get("upstream_header"), str):
            update["upstream_header"] = target["upstream_header"]
        return self.model_copy(update=update)

    def upstream_of(self, headers: Mapping[str, str]) -> str | None:
        """The address of the replica the gateway says it sent a request to: the gateway's own header (mapped to an
        address) when it names one, else chaosgate's x-chaosgate-upstream (stamped by the adapters' configs)."""
        if self.upstream_header is not None and (value := headers.get(self.upstream_header)) is not None:
            return self.upstreams.get(value, value)
        return headers.get("x-chaosgate-upstream")

    def prompt_words(self) -> list[str]:
        """Prompt vocabulary from Faker, seeded, so every run sends the same prompts."""
        from faker import Faker

        fake = Faker()
        fake.seed_instance(self.seed)
        return fake.words(nb=500)


@dataclass(frozen=True)
class Distribution:
    """The command line's say on distributed load (``chaosgate run --workers ...``); None: the scenario's."""

    workers: int | None = None        # --workers: overrides load.workers
    remote_workers: int = 0           # --remote-workers: external workers to wait for
    master_bind: str = "127.0.0.1"    # --master-bind
    master_port: int = 0              # --master-port (0: a free one)
    join_timeout: float = 30.0        # --join-timeout

    def settings(self, scenario: Scenario) -> dict[str, Any]:
        """The LoadConfig fields for ``scenario``: its load.workers unless --workers says otherwise."""
        from harness.load.clock import offset_bound

        workers = self.workers if self.workers is not None else scenario.load.workers or 0
        return {"workers": workers, "remote_workers": self.remote_workers, "master_bind": self.master_bind,
                "master_port": self.master_port, "join_timeout": self.join_timeout,
                "max_clock_offset": offset_bound(scenario)}


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


def address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as (host, port); ValueError saying what was expected."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT (e.g. 127.0.0.1:5557), got {text!r}")
    return host, int(port)
