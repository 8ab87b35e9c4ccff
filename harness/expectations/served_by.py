"""The fallback really answered: the share of a window's successful client requests a pool (its replicas'
identity header) or a model (the answer's ``model`` field) served.

A gateway that falls back from one model group to another (LiteLLM's ``fallbacks``, an openai pool to an
anthropic pool) answers the client in the client's own API whichever provider served it: the identity header
the fake stamps says which replica did, the answer's ``model`` field which model the gateway says answered.
Either proves the fallback served, where ``error_rate`` alone cannot tell a fallback from a primary that
recovered.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from harness.expectations.base import (
    Expectation, Target, Unjudgeable, Verdict, WindowSpec, describe_window, replicas_of, requests_in,
)
from harness.timeline import Request, Timeline


class ServedBy(Expectation):
    """At least ``min_share`` of the window's successful client requests were served by ``target`` (or answered
    as ``model``)."""

    kind: Literal["served_by"]
    target: Target | None = Field(default=None, description="The pool (claude[*]) or replica that must serve; "
                                                            "or give model.")
    model: str | None = Field(default=None, min_length=1,
                              description="The model the answers must name (their model field); or give target.")
    min_share: float = Field(gt=0.0, le=1.0, description="Lowest share of the window's successful requests, 0..1.")
    window: WindowSpec = Field(default="fault", description="Which requests count (by start time).")

    @model_validator(mode="after")
    def _one_of_target_or_model(self) -> ServedBy:
        if (self.target is None) == (self.model is None):
            raise ValueError("give exactly one of target (a pool or replica) and model (the answers' model field)")
        return self

    @property
    def server(self) -> str:
        return self.target if self.target is not None else f"model {self.model}"

    def describe(self) -> str:
        return f"{self.server} serves at least {self.min_share:.0%} of the successful requests " \
               f"{describe_window(self.window)}"

    def bound_text(self) -> str:
        return f"≥ {self.min_share:.2%}"

    def judge(self, timeline: Timeline) -> Verdict:
        start, end = self.window_bounds(self.window, timeline)
        requests = requests_in(timeline, self.window, start, end)
        served = [r for r in requests if r.ok]
        if not served:
            raise Unjudgeable(f"no successful request started between {start:.3f}s and {end:.3f}s "
                              f"({len(requests)} failed)")
        if self.target is not None:
            mine = set(replicas_of(self.target, timeline))
            by_it = [r for r in served if r.replica in mine]
        else:
            by_it = [r for r in served if r.model == self.model]
        share = len(by_it) / len(served)
        detail = (f"{self.server} served {len(by_it)} of the {len(served)} successful requests between "
                  f"{start:.3f}s and {end:.3f}s ({len(requests) - len(served)} failed)")
        if others := _the_others(served, by_it, by_model=self.target is None):
            detail += f"; the others: {others}"
        return self.verdict(share >= self.min_share, f"{share:.2%}", detail,
                            bound_value=self.min_share, measured_value=share)


def _the_others(served: list[Request], by_it: list[Request], by_model: bool) -> str:
    """Who served the rest, most first: ``chat[0] 12, chat[1] 3`` (by model: ``fake-model 15``)."""
    mine = {id(r) for r in by_it}
    counts: dict[str, int] = {}
    for r in served:
        if id(r) not in mine:
            name = (r.model if by_model else r.replica) or ("no model field" if by_model else "no replica header")
            counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{name} {n}" for name, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])))
