"""Tokens the upstreams generated that no client got: the cost of streams cut and of retried answers.

A stream the gateway cuts (or that breaks on its way) has been paid for up to where it broke; a try the
gateway abandons and retries (a stalled stream it times out, an answer it does not pass on) was generated
for nothing. The fakes journal the content tokens each answer generated and sent (``attempt.answer``;
fakes/identity.py). For every client request of the window (matched by the load's request id):

* it failed (no whole answer: an error status, a stream cut or never ended): every token of every try of it;
* it succeeded: every token of its tries but the one the client got, which is the last successful answer of
  the replica that served it (its identity header), else the last successful answer of any replica.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Literal

from pydantic import Field

from harness.expectations.base import Expectation, Unjudgeable, Verdict, WindowSpec, describe_window, requests_in
from harness.timeline import Answer, Request, Timeline

NAMED = 3


def client_got(request: Request, answers: list[Answer]) -> Answer | None:
    """The answer of ``request``'s tries that reached its client whole (None: none did)."""
    if not request.ok:
        return None
    good = [a for a in answers if a.status is not None and a.status < 400]
    by_server = [a for a in good if a.replica == request.replica]
    chosen = by_server or good
    return chosen[-1] if chosen else None


class TokensWasted(Expectation):
    """At most ``max`` tokens generated upstream for the window's client requests never reached their client."""

    kind: Literal["tokens_wasted"]
    max: int = Field(ge=0, description="Most tokens the upstreams may generate that no client gets whole.")
    window: WindowSpec = Field(default="run", description="Which client requests count (by start time).")

    def describe(self) -> str:
        return f"at most {self.max} tokens generated upstream are wasted (streams cut, retried answers) " \
               f"{describe_window(self.window)}"

    def bound_text(self) -> str:
        return f"≤ {self.max} tokens"

    def judge(self, timeline: Timeline) -> Verdict:
        if not timeline.answers:
            raise Unjudgeable("the run journalled no answers of the fakes (attempt.answer: a journal from before "
                              "they existed, or your own servers: upstreams[].address), so tokens cannot be counted")
        start, end = self.window_bounds(self.window, timeline)
        requests = [r for r in requests_in(timeline, self.window, start, end) if r.id is not None]
        if not requests:
            raise Unjudgeable(f"no client request with a load id started between {start:.3f}s and {end:.3f}s")
        by_request: dict[str, list[Answer]] = defaultdict(list)
        for answer in timeline.answers:
            if answer.request_id is not None:
                by_request[answer.request_id].append(answer)
        generated = cut = retried = 0
        cut_requests: list[tuple[Request, int]] = []
        retried_tries = 0
        for request in requests:
            answers = by_request.get(request.id or "", [])
            generated += sum(a.tokens for a in answers)
            got = client_got(request, answers)
            if got is None:
                lost = sum(a.tokens for a in answers)
                cut += lost
                if lost:
                    cut_requests.append((request, lost))
            else:
                others = [a for a in answers if a is not got and a.tokens]
                retried += sum(a.tokens for a in others)
                retried_tries += len(others)
        wasted = cut + retried
        detail = (f"{wasted} of the {generated} tokens generated for {len(requests)} client requests between "
                  f"{start:.3f}s and {end:.3f}s reached no client: {cut} in the answers of {len(cut_requests)} "
                  f"requests whose client got no whole answer, {retried} in {retried_tries} tries of answered "
                  f"requests that their client never got")
        if cut_requests:
            worst = sorted(cut_requests, key=lambda item: -item[1])[:NAMED]
            detail += "; e.g. " + ", ".join(f"{r.id} ({n} tokens, {r.error})" for r, n in worst)
        return self.verdict(wasted <= self.max, f"{wasted} tokens", detail,
                            bound_value=float(self.max), measured_value=float(wasted))
