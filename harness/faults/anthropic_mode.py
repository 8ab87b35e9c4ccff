"""A fault mode of the fake Anthropic server (fakes/anthropic.py), set through its control API.

The provider's own errors (``anthropic_error``: 529 overloaded_error, 429 rate_limit_error, 500
api_error, with or without ``retry-after``), an ``error`` event inside a 200 stream, streams that stall
before their first token or send only pings, and the protocol-neutral modes the OpenAI fake has too:
the catalogue and its parameters are the fake's own models (fakes/anthropic_modes.py).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from fakes.anthropic_modes import ANTHROPIC_MODE_MODELS
from harness.faults.base import ControlFault, with_modes


class AnthropicFault(ControlFault):
    """``{kind: anthropic_fault, mode: <mode>, <its parameters>}`` on replicas of an ``anthropic`` pool."""

    kind: Literal["anthropic_fault"]
    pool_kinds: ClassVar[frozenset[str] | None] = frozenset({"anthropic"})
    fake_only: ClassVar[str | None] = "the fake's control port (its fault modes)"


with_modes(AnthropicFault, ANTHROPIC_MODE_MODELS)
