"""A fault mode of the fake LLM server (fakes/llm.py), set through its control API.

Errors with OpenAI's body, slow or broken streams, hangs, wrong content types, failing health
or inference, memory growth and CPU saturation: the catalogue and its parameters are the fake's
own models (fakes/llm_modes.py), so a scenario and the control API accept the same thing.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from fakes.llm_modes import LLM_MODE_MODELS
from harness.faults.base import ControlFault, with_modes


class LlmFault(ControlFault):
    """``{kind: llm_fault, mode: <mode>, <its parameters>}`` on replicas of an ``openai`` pool."""

    kind: Literal["llm_fault"]
    pool_kinds: ClassVar[frozenset[str] | None] = frozenset({"openai"})
    fake_only: ClassVar[str | None] = "the fake's control port (its fault modes)"


with_modes(LlmFault, LLM_MODE_MODELS)
