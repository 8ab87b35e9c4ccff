"""The promised window of a stalled stream: how long the gateway waits on a try whose stream sent its headers
and no token, before it lets go of it (and fails the request over, or ends it), from its configuration.

* Envoy: the route's ``timeout`` (``gateway.request_timeout``) runs from the request's start until its response
  has ended, so it ends a stream that stalls; ``retries.per_try_timeout`` does not, once the response headers
  have arrived (measured on Envoy 1.40: a stalled try let go of 3.0 s after it began with ``timeout: 3s`` and
  ``per_try_timeout: 1.5s``). Envoy has forwarded the headers to the client by then, so it cannot retry: it
  resets the client's stream (which sees it end one ``delayed_close_timeout``, 1 s, later). Without a route
  timeout nothing this side of the listener's stream idle timeout (5 min) ends it.
* LiteLLM: the router's ``stream_timeout`` (``gateway.litellm.stream_timeout``), else ``timeout``
  (``request_timeout``), is the read timeout of a streamed call. The proxy waits for the first chunk before it
  answers the client, so a stalled try ends in ``litellm.Timeout`` and is retried (``num_retries``) on a
  deployment of the group picked again (the same one included), then on the fallback groups; with no try left
  the client gets 408 (measured on LiteLLM 1.108.7: stalled tries let go of 1.50-1.61 s after they began with
  ``stream_timeout: 1.5s``).

The window is per stalled try, from when its headers went out to when the gateway let go of it
(``stall_detected``, harness/expectations/stall_detected.py).
"""

from __future__ import annotations

from harness.faults import Fault
from harness.promise.window import OBSERVER_MARGIN, SCHEDULING_MARGIN, Never, Promise, Unknown, Window
from harness.scenario import Scenario

STALL_MODES = frozenset({"stall_first_token"})
# Covers: the proxy's own time between its read timeout firing and the try's connection closing, on a busy
# 2-core machine. Measured (LiteLLM 1.108.7, stream_timeout 1.5 s): let go of 1.50-1.61 s after the headers went
# out; the 0.5 s is the per-call allowance of harness/promise/fallback.py (LITELLM_CALL_OVERHEAD).
LITELLM_MARGIN = 0.5
# Covers: the gateway starts its timer when it has the client's request, a moment before the try reaches the
# replica and its headers go out (where the measurement starts). Chosen, not measured: measured on Envoy with an
# idle machine 2-5 ms.
FORWARD_ALLOWANCE = 0.1


def stall_window(scenario: Scenario, fault: Fault) -> Promise:
    """Stalled try's headers out → the gateway lets go of it, from the scenario's gateway settings."""
    if fault.kind not in ("llm_fault", "anthropic_fault") or str(getattr(fault, "mode", "")) not in STALL_MODES:
        return Unknown(f"{fault.label} does not stall streams before their first token (mode stall_first_token)")
    g = scenario.gateway
    if g.config is not None:
        return Unknown("the stream timeouts of the gateway's own file (gateway.config) are not read yet")
    kind = g.kind
    if kind == "envoy":
        if g.request_timeout <= 0:
            return Never("request_timeout 0: no route timeout, and per_try_timeout does not apply once the headers "
                         "came; only the listener's stream idle timeout (5 min) would end the stall")
        return Window(g.request_timeout - FORWARD_ALLOWANCE, g.request_timeout,
                      f"Envoy's route timeout ({g.request_timeout:g}s) ends the stream; per_try_timeout does not "
                      "apply once the headers came (measured), and with the headers forwarded Envoy cannot retry")
    if kind == "litellm":
        limit = g.litellm.stream_timeout if g.litellm.stream_timeout is not None else g.request_timeout
        source = "stream_timeout" if g.litellm.stream_timeout is not None else "timeout (request_timeout)"
        if limit <= 0:
            return Never("no stream_timeout and request_timeout 0: LiteLLM waits on the stalled stream for good")
        return Window(limit - FORWARD_ALLOWANCE, limit, f"LiteLLM's {source} ({limit:g}s) is the read timeout of a streamed call; the "
                                    "try ends in litellm.Timeout and is retried or falls back while tries are left",
                      margin=OBSERVER_MARGIN + SCHEDULING_MARGIN + LITELLM_MARGIN)
    return Unknown(f"the stream timeouts of {kind} are not modelled")
