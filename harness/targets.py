"""Replica targets as written in scenarios: ``chat[0]`` (one), ``chat[*]`` or ``chat`` (all)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

TARGET_PATTERN = r"^[a-z][a-z0-9_-]*(\[(\d+|\*)\])?$"
_TARGET = re.compile(TARGET_PATTERN)


def _check_target(value: str) -> str:
    if not _TARGET.match(value):
        raise ValueError(f"expected a target like 'chat[0]', 'chat[*]' or 'chat', got {value!r}")
    return value


Target = Annotated[
    str,
    AfterValidator(_check_target),
    WithJsonSchema({"type": "string", "pattern": TARGET_PATTERN, "examples": ["chat[0]", "chat[*]", "chat"]}),
]


def replica_name(pool: str, index: int) -> str:
    """The canonical name of one replica."""
    return f"{pool}[{index}]"


def split_target(target: str) -> tuple[str, int | None]:
    """``chat[1]`` → (``chat``, 1); ``chat[*]`` and ``chat`` → (``chat``, None)."""
    pool, _, rest = target.partition("[")
    index = rest.rstrip("]")
    return pool, (int(index) if index and index != "*" else None)


def resolve(target: str, pools: dict[str, int]) -> list[str]:
    """The replicas a target names, given each pool's replica count; ValueError if none."""
    pool, index = split_target(target)
    if pool not in pools:
        known = ", ".join(sorted(pools)) or "none"
        raise ValueError(f"no upstream pool named {pool!r} (pools: {known})")
    if index is None:
        return [replica_name(pool, i) for i in range(pools[pool])]
    if index >= pools[pool]:
        raise ValueError(f"pool {pool!r} has {pools[pool]} replicas (0..{pools[pool] - 1}), got index {index}")
    return [replica_name(pool, index)]
