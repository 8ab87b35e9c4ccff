"""Which block of the user's file is which scenario pool, and whether the file may run here.

The same for every gateway: a pool is bound to the block ``gateway.bind`` names for it, else to the
block of the same name; a bound block has one endpoint per replica of its pool (its endpoints
become the replicas' Toxiproxy listeners, in order); every other address the file sends traffic to
must be on this machine (loopback) or named with ``--allow-host``. Problems are found before
anything starts, at the line of the scenario or of the user's file that causes them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import Problem
from harness.own_config.base import Block, Endpoint, NativeConfig

if TYPE_CHECKING:
    from harness.scenario import Scenario

YamlPath = tuple[str | int, ...]
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine: a loopback address, or localhost (never resolved otherwise)."""
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def binding_of(bind: Mapping[str, str], pools: Iterable[str], config: NativeConfig) -> dict[str, str]:
    """Block name → pool, for every one of ``pools`` that has a block (``bind``, else the same name)."""
    pools = list(pools)
    binding = dict(bind)
    bound_pools = set(binding.values())
    for pool in pools:
        if pool not in bound_pools and pool in config.blocks and pool not in binding:
            binding[pool] = pool
    return {block: pool for block, pool in binding.items() if block in config.blocks and pool in pools}


def effective_binding(scenario: Scenario, config: NativeConfig) -> dict[str, str]:
    """Block name → pool, for every pool of the scenario that has a block (``bind``, else the same name)."""
    return binding_of(scenario.gateway.bind, scenario.pools, config)


def block_of(scenario: Scenario, config: NativeConfig, pool: str) -> Block | None:
    for block, bound in effective_binding(scenario, config).items():
        if bound == pool:
            return config.blocks[block]
    return None


def binding_problems(scenario: Scenario, config: NativeConfig, locate: Callable[[YamlPath], tuple[int | None, int | None]],
                     scenario_file: str, allow_hosts: Iterable[str] = ()) -> list[Problem]:
    """Everything that stops the file from running for this scenario (empty: it can run)."""
    problems: list[Problem] = []
    word = config.block_word

    def at_scenario(path: YamlPath, field: str, message: str) -> None:
        line, column = locate(path)
        problems.append(Problem(scenario_file, line, column, field, message))

    blocks = ", ".join(config.blocks) or "none"
    targets: dict[str, str] = {}
    for block, pool in scenario.gateway.bind.items():
        if block not in config.blocks:
            at_scenario(("gateway", "bind", block), f"gateway.bind.{block}",
                        f"{config.file} has no {word} named {block!r} (its {word}s: {blocks})")
        if pool not in scenario.pools:
            at_scenario(("gateway", "bind", block), f"gateway.bind.{block}",
                        f"no upstream pool named {pool!r} (pools: {', '.join(scenario.pools)})")
        elif pool in targets:
            at_scenario(("gateway", "bind", block), f"gateway.bind.{block}",
                        f"pool {pool!r} is bound twice (to {targets[pool]!r} and {block!r}); bind one {word} per pool")
        targets.setdefault(pool, block)
    binding = effective_binding(scenario, config)
    for i, upstream in enumerate(scenario.upstreams):
        bound = next((b for b, p in binding.items() if p == upstream.name), None)
        if bound is None:
            if upstream.name not in targets:
                at_scenario(("upstreams", i, "name"), f"upstreams[{i}].name",
                            f"{config.file} has no {word} named {upstream.name!r} (its {word}s: {blocks}); "
                            f"bind one to this pool: gateway.bind: {{{word.upper().replace(' ', '_')}: {upstream.name}}}")
            continue
        found = config.blocks[bound]
        problems += [Problem(config.file, why.source.line, None, why.source.setting, why.why) for why in found.cannot_bind]
        if not found.cannot_bind and found.speaks is not None and found.speaks != upstream.kind:
            problems.append(Problem(config.file, found.source.line, None, found.source.setting,
                                    f"{word} {bound!r} calls its endpoints with {found.speaks}'s API, and pool "
                                    f"{upstream.name!r} has kind: {upstream.kind}; bind it to a pool of kind: "
                                    f"{found.speaks}"))
        if not found.cannot_bind and len(found.endpoints) != upstream.replicas:
            problems.append(Problem(config.file, found.source.line, None, found.source.setting,
                                    f"{word} {bound!r} has {len(found.endpoints)} endpoint(s) and pool "
                                    f"{upstream.name!r} has {upstream.replicas} replica(s): each endpoint becomes one "
                                    f"replica, so set replicas: {len(found.endpoints)} on upstream {upstream.name!r}"))
    load_bound = next((b for b, p in binding.items() if p == scenario.load_pool), None)
    sends_chat = any(weight > 0 for kind, weight in scenario.load.mix.items() if str(kind).startswith("chat"))
    if (config.load_source is not None and load_bound is not None and sends_chat
            and scenario.load_pool == scenario.upstreams[0].name and config.load_block != load_bound):
        source = config.load_source
        went = (f"goes to {word} {config.load_block!r}" if config.load_block is not None
                else "has nowhere to go (no route takes it)")
        problems.append(Problem(config.file, source.line, None, source.setting,
                                f"the load's /v1/chat/completions {went}, but its pool {scenario.load_pool!r} is bound "
                                f"to {word} {load_bound!r}: route it there, or bind {scenario.load_pool!r} to the "
                                f"{word} it reaches"))
    allowed = {host.lower() for host in allow_hosts}
    unbound = [endpoint for name, block in config.blocks.items() if name not in binding for endpoint in block.endpoints]
    for endpoint in [*unbound, *config.outbound]:
        if not is_loopback(endpoint.host) and endpoint.host.lower() not in allowed:
            problems.append(off_machine(config.file, endpoint))
    return problems


def off_machine(file: str, endpoint: Endpoint) -> Problem:
    return Problem(file, endpoint.source.line, None, endpoint.source.setting,
                   f"sends traffic to {endpoint.address}, which is not this machine: bind the block it is in to a "
                   f"pool, change it to a loopback address, or allow it with --allow-host {endpoint.host}")


def resolve_config_path(config: str, scenario_file: str) -> Path:
    """``gateway.config`` as written: relative to the scenario file's folder."""
    path = Path(config).expanduser()
    return path if path.is_absolute() else Path(scenario_file).resolve().parent / path
