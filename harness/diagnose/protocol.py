"""Protocol layer: does the host speak what the gateway speaks to it (HTTP/1.1 or HTTP/2, ALPN),
and does its API answer with the content type its clients parse (JSON for an OpenAI API).
Evidence: the bytes the host answers an HTTP/2 preface with, the negotiated ALPN, content types."""

from __future__ import annotations

import socket

import httpx

from harness.diagnose.base import (
    LayerResult, ProbeSettings, ProbeTarget, connect, fail, http_client, ok, request_extensions, short,
    transport_failure,
)

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # + empty SETTINGS


class ProtocolLayer:
    name = "protocol"

    def applies(self, target: ProbeTarget) -> bool:
        return True

    def probe(self, target: ProbeTarget, settings: ProbeSettings) -> LayerResult:
        found: list[str] = []
        if target.cluster.http2:
            if target.cluster.tls is not None:
                alpn = target.notes.get("alpn")
                if alpn != "h2":
                    return fail(self.name, "wrong_protocol", f"the gateway speaks HTTP/2; TLS negotiated ALPN "
                                f"{alpn or 'none'}, not h2")
                found.append("ALPN h2")
            else:
                result = self._h2c(target, settings)
                if result is not None:
                    return result
                found.append("HTTP/2 (prior knowledge): SETTINGS answered")
        else:
            response = target.notes.get("health_response")
            if isinstance(response, httpx.Response) and response.http_version != "HTTP/1.1":
                return fail(self.name, "wrong_protocol", f"the gateway speaks HTTP/1.1; the host answered "
                            f"{response.http_version}")
            found.append("HTTP/1.1")
        if target.cluster.kind == "openai":
            try:
                with http_client(target, settings.inference_timeout) as client:
                    response = client.get(target.url("/v1/models"), extensions=request_extensions(target))
            except httpx.HTTPError as exc:
                cause = transport_failure(exc)
                if cause is not None:
                    return fail(self.name, cause[0], f"GET /v1/models: {cause[1]}")
                return fail(self.name, "no_response" if isinstance(exc, httpx.TimeoutException) else "wrong_protocol",
                            f"GET /v1/models: {type(exc).__name__}: {exc}")
            kind = response.headers.get("content-type", "")
            if response.status_code == 200 and not kind.startswith("application/json"):
                return fail(self.name, "wrong_content_type", f"GET /v1/models → 200 with content-type {kind!r}, "
                            f"not application/json: {short(response.text, 80)!r}")
            found.append(f"GET /v1/models → {response.status_code} {kind or 'no content-type'}")
        return ok(self.name, "; ".join(found))

    def _h2c(self, target: ProbeTarget, settings: ProbeSettings) -> LayerResult | None:
        try:
            conn = connect(target, settings)
        except OSError as exc:
            cause = transport_failure(exc) or ("connection_refused", str(exc))
            return fail(self.name, cause[0], f"connect: {cause[1]}")
        try:
            conn.settimeout(settings.slow_budget)
            conn.sendall(H2_PREFACE)
            head = conn.recv(64)
        except (TimeoutError, socket.timeout):
            return fail(self.name, "no_response", "HTTP/2 preface: no answer")
        except OSError as exc:
            cause = transport_failure(exc) or ("connection_closed", str(exc))
            return fail(self.name, cause[0], f"HTTP/2 preface: {cause[1]}")
        finally:
            conn.close()
        if head.startswith(b"HTTP/1"):
            status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
            return fail(self.name, "wrong_protocol", f"the gateway speaks HTTP/2 (prior knowledge); the host answered "
                        f"HTTP/1: {status_line!r}")
        if len(head) < 9 or head[3] != 0x04:
            return fail(self.name, "wrong_protocol", f"the gateway speaks HTTP/2; the host answered {head[:16]!r}, "
                        "not a SETTINGS frame")
        return None
