"""A schema-mismatch fault mode of the fake MCP server (fakes/mcp.py), set through its control API.

The catalogue and its parameters are the fake's own models (fakes/mcp_modes.py), so a scenario
and the control API accept the same thing.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from fakes.mcp_modes import MCP_MODE_MODELS
from harness.faults.base import ControlFault, with_modes


class McpFault(ControlFault):
    """``{kind: mcp_fault, mode: <mode>, <its parameters>}`` on replicas of an ``mcp`` pool."""

    kind: Literal["mcp_fault"]
    pool_kinds: ClassVar[frozenset[str] | None] = frozenset({"mcp"})
    fake_only: ClassVar[str | None] = "the fake's control port (its fault modes)"


with_modes(McpFault, MCP_MODE_MODELS)
