"""TLS layer: handshake as the gateway does (SNI, ALPN), take the certificate the host serves and
judge it against what the gateway requires (validity dates, its trusted CA, the names it
matches), with ``cryptography``. Evidence: the certificate's dates, subject, SANs and issuer."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from harness.diagnose.base import (
    LayerResult, ProbeSettings, ProbeTarget, client_context, connect, fail, ok, transport_failure,
)


def _ago(delta: dt.timedelta) -> str:
    """A duration in words precise to the second: '1:00:10' (h:mm:ss) or '3 days, 2:00:00'."""
    return str(dt.timedelta(seconds=round(delta.total_seconds())))


def _cn(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else name.rfc4514_string()


def _dns_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(n) for n in san.get_values_for_type(x509.DNSName)]


def _issued_by_trusted(cert: x509.Certificate, ca_file: str) -> bool | None:
    """Whether one of the CAs in ``ca_file`` signed ``cert``; None if the file cannot be read."""
    try:
        cas = x509.load_pem_x509_certificates(Path(ca_file).read_bytes())
    except (OSError, ValueError):
        return None
    for ca in cas:
        try:
            cert.verify_directly_issued_by(ca)
            return True
        except (ValueError, TypeError, Exception):  # InvalidSignature and friends
            continue
    return False


class TlsLayer:
    name = "tls"

    def applies(self, target: ProbeTarget) -> bool:
        return target.cluster.tls is not None

    def probe(self, target: ProbeTarget, settings: ProbeSettings) -> LayerResult:
        tls = target.cluster.tls
        assert tls is not None
        try:
            raw = connect(target, settings)
        except OSError as exc:
            cause = transport_failure(exc) or ("connection_refused", str(exc))
            return fail(self.name, cause[0], f"connect: {cause[1]}")
        raw.settimeout(settings.slow_budget)
        try:
            with client_context(target).wrap_socket(raw, server_hostname=tls.sni) as conn:
                der = conn.getpeercert(binary_form=True)
                version, alpn = conn.version(), conn.selected_alpn_protocol()
        except (TimeoutError, socket.timeout):
            return fail(self.name, "no_response", f"TLS handshake: no answer within {settings.slow_budget:g}s")
        except ssl.SSLError as exc:
            if isinstance(exc, ssl.SSLEOFError):
                return fail(self.name, "connection_closed", f"TLS handshake: the peer closed the connection ({exc})")
            return fail(self.name, "tls_handshake", f"TLS handshake failed: {exc.reason or exc}")
        except OSError as exc:
            cause = transport_failure(exc) or ("tls_handshake", str(exc))
            return fail(self.name, cause[0], f"TLS handshake: {cause[1]}")
        finally:
            raw.close()
        target.notes["alpn"] = alpn
        if not der:
            return fail(self.name, "tls_handshake", "the server sent no certificate")
        cert = x509.load_der_x509_certificate(der)
        now = dt.datetime.now(dt.timezone.utc)
        subject, issuer, names = _cn(cert.subject), _cn(cert.issuer), _dns_names(cert)
        seen = (f"certificate CN={subject} SAN={','.join(names) or '-'} issuer CN={issuer} valid "
                f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} to {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
        details = {"subject": subject, "issuer": issuer, "san": names, "version": version, "alpn": alpn,
                   "not_before": cert.not_valid_before_utc.isoformat(), "not_after": cert.not_valid_after_utc.isoformat()}
        if now > cert.not_valid_after_utc:
            return fail(self.name, "tls_expired", f"expired {_ago(now - cert.not_valid_after_utc)} ago: {seen}", **details)
        if now < cert.not_valid_before_utc:
            return fail(self.name, "tls_not_yet_valid", f"not valid for another {_ago(cert.not_valid_before_utc - now)}: "
                        f"{seen}", **details)
        trust_note = ""
        if tls.trusted_ca_file:
            trusted = _issued_by_trusted(cert, tls.trusted_ca_file)
            if trusted is False:
                return fail(self.name, "tls_untrusted", f"not signed by the gateway's trusted CA "
                            f"({tls.trusted_ca_file}): {seen}", **details)
            if trusted is None:
                trust_note = f"; chain not checked ({tls.trusted_ca_file} is not readable here)"
        wanted = list(tls.san_names) or ([tls.sni] if tls.sni else [])
        if wanted and not set(wanted) & set(names):
            return fail(self.name, "tls_hostname", f"the gateway requires the name {' or '.join(wanted)}: {seen}",
                        **details)
        return ok(self.name, f"{version}, ALPN {alpn or '-'}: {seen}{trust_note}", **details)
