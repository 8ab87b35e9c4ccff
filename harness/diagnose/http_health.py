"""HTTP health layer: the gateway's own health check, replayed: its method, path, Host header
and timeout, judged by its expected statuses and ``receive`` text. Evidence: status, body,
time. A miss of the timeout is retried once with a longer budget to tell slow from hung."""

from __future__ import annotations

import time

import httpx

from harness.diagnose.base import (
    LayerResult, ProbeSettings, ProbeTarget, fail, http_client, ok, request_extensions, short, transport_failure,
)
from harness.diagnose.model import HealthCheckDef

USER_AGENT = "Envoy/HC"  # what Envoy's health checker sends; some servers answer it specially


class HttpHealthLayer:
    name = "http_health"

    def applies(self, target: ProbeTarget) -> bool:
        return target.cluster.health_check is not None

    def _get(self, target: ProbeTarget, hc: HealthCheckDef, timeout: float) -> tuple[httpx.Response, float]:
        began = time.perf_counter()
        with http_client(target, timeout) as client:
            response = client.request(hc.method, target.url(hc.path), extensions=request_extensions(target),
                                      content=hc.send.encode() if hc.send is not None else None,
                                      headers={"host": hc.host or target.cluster.name, "user-agent": USER_AGENT,
                                               **dict(hc.headers)})
        return response, time.perf_counter() - began

    def probe(self, target: ProbeTarget, settings: ProbeSettings) -> LayerResult:
        hc = target.cluster.health_check
        assert hc is not None
        what = f"{hc.method} {hc.path}"
        try:
            response, took = self._get(target, hc, hc.timeout)
        except httpx.TimeoutException:
            try:
                response, took = self._get(target, hc, settings.slow_budget)
            except httpx.TimeoutException:
                return fail(self.name, "no_response", f"{what}: connected, no answer within the check's timeout "
                            f"({hc.timeout:g}s) nor within {settings.slow_budget:g}s (hung process, or data dropped "
                            "on the way)")
            except httpx.HTTPError as exc:
                return self._transport(what, exc)
            return fail(self.name, "health_check_timeout", f"{what}: answered {response.status_code} after "
                        f"{took * 1000:.0f}ms, beyond the check's timeout of {hc.timeout * 1000:.0f}ms",
                        status=response.status_code, seconds=round(took, 3))
        except httpx.HTTPError as exc:
            return self._transport(what, exc)
        body = short(response.text)
        target.notes["health_response"] = response
        details = {"status": response.status_code, "seconds": round(took, 3), "body": body,
                   "http_version": response.http_version}
        if not hc.expects(response.status_code):
            seen = f"{what} → {response.status_code} in {took * 1000:.0f}ms, body {body!r}; expected {hc.expected_text()}"
            if response.status_code in (404, 405, 501) or response.status_code < 400:
                return fail(self.name, "health_check_misconfigured", f"{seen}: the upstream does not serve what the "
                            "check asks for (wrong path, method or expected status)", **details)
            return fail(self.name, "health_check_failing", f"{seen}: the upstream reports itself unhealthy", **details)
        missing = _missing_in_order(hc.receive, response.text)
        if missing and target.cluster.kind == "mcp":
            # an MCP check's body fragments: the MCP layer tells schema drift from a check that asks too much
            target.notes["receive_missing"] = missing
            return ok(self.name, f"{what} → {response.status_code} in {took * 1000:.0f}ms, but the body lacks "
                      f"{missing[0]!r} the check requires (judged by the mcp layer)", **details)
        if missing:
            return fail(self.name, "health_check_failing", f"{what} → {response.status_code}, but the body lacks "
                        f"{missing[0]!r} the check requires: {body!r}", **details)
        return ok(self.name, f"{what} → {response.status_code} in {took * 1000:.0f}ms", **details)

    def _transport(self, what: str, exc: httpx.HTTPError) -> LayerResult:
        found = transport_failure(exc)
        if found is not None:
            return fail(self.name, found[0], f"{what}: {found[1]}")
        if isinstance(exc, httpx.RemoteProtocolError):
            return fail(self.name, "wrong_protocol", f"{what}: the answer is not HTTP/1.1: {exc}")
        return fail(self.name, "connection_closed", f"{what}: {type(exc).__name__}: {exc}")


def _missing_in_order(fragments: tuple[str, ...], body: str) -> list[str]:
    """The fragments (and those after it) not found in ``body`` in order, as Envoy's ``receive`` matches."""
    at = 0
    for index, fragment in enumerate(fragments):
        found = body.find(fragment, at)
        if found < 0:
            return list(fragments[index:])
        at = found + len(fragment)
    return []
