"""A test CA for TLS between the gateway and its upstreams: mints the certificates a replica
can serve, good and bad, as PEM files in the run folder.

For one server name it writes, under ``<dir>``::

    ca.pem                          the CA the gateway trusts
    <cert>.crt, <cert>.key          one certificate (with its chain) and key per CERT_KINDS entry

``valid`` is signed by the trusted CA for the expected name and valid now; ``expired`` ended
an hour ago; ``not_yet_valid`` starts in a day; ``wrong_host`` names another host;
``untrusted`` is right in every way but signed by a CA the gateway does not trust.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CertKind = Literal["valid", "expired", "not_yet_valid", "wrong_host", "untrusted"]
CERT_KINDS: tuple[CertKind, ...] = ("valid", "expired", "not_yet_valid", "wrong_host", "untrusted")
WRONG_HOST = "wrong-host.chaosgate.invalid"
CA_FILE = "ca.pem"

_Key = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class _Authority:
    name: x509.Name
    key: _Key
    cert: x509.Certificate


def _new_key() -> _Key:
    return ec.generate_private_key(ec.SECP256R1())


def _authority(common_name: str, now: dt.datetime) -> _Authority:
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "chaosgate test CA"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return _Authority(name, key, cert)


def _leaf(issuer: _Authority, host: str, not_before: dt.datetime, not_after: dt.datetime) -> tuple[x509.Certificate, _Key]:
    key = _new_key()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(issuer.name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
            .sign(issuer.key, hashes.SHA256()))
    return cert, key


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def cert_paths(directory: Path, kind: str) -> tuple[Path, Path]:
    """The certificate chain and key files of ``kind`` in ``directory``."""
    return directory / f"{kind}.crt", directory / f"{kind}.key"


def mint(directory: Path, server_name: str, now: dt.datetime | None = None) -> Path:
    """Write the trusted CA and one certificate of every kind for ``server_name``; returns the CA file."""
    now = now or dt.datetime.now(dt.timezone.utc)
    directory.mkdir(parents=True, exist_ok=True)
    trusted = _authority("chaosgate trusted test CA", now)
    stranger = _authority("chaosgate untrusted test CA", now)
    day, hour = dt.timedelta(days=1), dt.timedelta(hours=1)
    plans: dict[CertKind, tuple[_Authority, str, dt.datetime, dt.datetime]] = {
        "valid": (trusted, server_name, now - day, now + 30 * day),
        "expired": (trusted, server_name, now - 2 * day, now - hour),
        "not_yet_valid": (trusted, server_name, now + day, now + 30 * day),
        "wrong_host": (trusted, WRONG_HOST, now - day, now + 30 * day),
        "untrusted": (stranger, server_name, now - day, now + 30 * day),
    }
    for kind, (issuer, host, not_before, not_after) in plans.items():
        cert, key = _leaf(issuer, host, not_before, not_after)
        cert_file, key_file = cert_paths(directory, kind)
        cert_file.write_bytes(_pem(cert) + _pem(issuer.cert))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        # Throwaway test keys, left readable (umask) so a replica container's user can read its mount.
    ca_file = directory / CA_FILE
    ca_file.write_bytes(_pem(trusted.cert))
    return ca_file
