"""TCP layer: connect to the host as the gateway does (within its connect_timeout), then watch
the connection briefly. Evidence: refused (nothing listens), timeout (SYN unanswered), or a
connection accepted and at once closed or reset (a proxy or load balancer whose own backend is
gone answers that way)."""

from __future__ import annotations

import socket
import time

from harness.diagnose.base import (
    LayerResult, ProbeSettings, ProbeTarget, connect, fail, is_loopback, ok, transport_failure,
)


class TcpLayer:
    name = "tcp"

    def applies(self, target: ProbeTarget) -> bool:
        return True

    def probe(self, target: ProbeTarget, settings: ProbeSettings) -> LayerResult:
        where = f"{target.address}:{target.port}"
        if not is_loopback(target.address):
            return fail(self.name, "not_loopback", f"{where} is not a loopback address: not probed")
        began = time.perf_counter()
        try:
            conn = connect(target, settings)
        except ConnectionRefusedError:
            via_dns = f"; DNS gave {target.host.hostname} → {', '.join(target.notes['resolved'])}: if the upstream " \
                "listens elsewhere, the record is wrong" if "resolved" in target.notes else ""
            return fail(self.name, "connection_refused", f"connect {where}: refused in "
                        f"{(time.perf_counter() - began) * 1000:.1f}ms (nothing listens on that port){via_dns}")
        except (TimeoutError, socket.timeout):
            return fail(self.name, "connection_timeout", f"connect {where}: no answer within "
                        f"{min(settings.connect_timeout, target.cluster.connect_timeout):g}s")
        except OSError as exc:  # e.g. reset while connecting (an accept followed by an RST at once)
            cause = transport_failure(exc) or ("connection_refused", exc.strerror or str(exc))
            return fail(self.name, cause[0], f"connect {where}: {cause[1]}")
        connect_ms = (time.perf_counter() - began) * 1000
        try:
            conn.settimeout(settings.peek_s)
            try:
                data = conn.recv(1, socket.MSG_PEEK)
            except (TimeoutError, socket.timeout):
                return ok(self.name, f"connect {where}: ok in {connect_ms:.1f}ms", connect_ms=round(connect_ms, 2))
            except ConnectionResetError:
                return fail(self.name, "connection_reset", f"connect {where}: accepted, then reset by the peer "
                            f"within {settings.peek_s * 1000:.0f}ms without a byte sent")
            if data == b"":
                return fail(self.name, "connection_closed", f"connect {where}: accepted, then closed by the peer "
                            f"within {settings.peek_s * 1000:.0f}ms without a byte (a proxy whose backend is "
                            "down, or a process that dies on accept)")
            return ok(self.name, f"connect {where}: ok in {connect_ms:.1f}ms (the server spoke first)")
        finally:
            conn.close()
