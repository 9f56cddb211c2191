"""HTTPS for the local Prefect server (API and UI) and the webhook receiver.

A certificate the user gives (FLEETWRIGHT_TLS_CERT_FILE and FLEETWRIGHT_TLS_KEY_FILE, with
FLEETWRIGHT_TLS_CA_FILE when no system store trusts it), or a local certificate authority
`fleetwright tls init` creates in `<home>/tls`: a CA, and a server certificate it signs for
127.0.0.1, ::1, localhost and the names given. Clients trust the CA file, never "any
certificate"; browsers are given the CA (docs/security.md says how).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fleetwright.errors import ConfigurationError, ValidationError
from fleetwright.private import write_private

__all__ = [
    "CA_FILE",
    "CERT_FILE",
    "DEFAULT_HOSTS",
    "KEY_FILE",
    "TLSFiles",
    "create_local_ca",
    "local_tls_files",
]

CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
CERT_FILE = "server.pem"
KEY_FILE = "server-key.pem"
DEFAULT_HOSTS: tuple[str, ...] = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class TLSFiles:
    """What a server needs to serve HTTPS, and what its clients trust."""

    cert: Path
    key: Path
    #: The CA bundle that verifies `cert`; None: the system's trust store does.
    ca: Path | None = None

    def check(self) -> TLSFiles:
        """ConfigurationError naming the file that is missing or unreadable."""
        for what, path in (("certificate", self.cert), ("key", self.key), ("CA", self.ca)):
            if path is not None and not path.is_file():
                raise ConfigurationError(
                    f"TLS {what} file {path} does not exist; run `fleetwright tls init` or "
                    "point FLEETWRIGHT_TLS_CERT_FILE / _KEY_FILE / _CA_FILE at yours"
                )
        return self


def local_tls_files(folder: Path) -> TLSFiles | None:
    """The files `fleetwright tls init` wrote into `folder`, if it did."""
    cert, key, ca = folder / CERT_FILE, folder / KEY_FILE, folder / CA_FILE
    if cert.is_file() and key.is_file():
        return TLSFiles(cert=cert, key=key, ca=ca if ca.is_file() else None)
    return None


def _san(host: str) -> object:
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    name = host.strip().lower().rstrip(".")
    labels = name.split(".")
    if (
        not name
        or len(name) > 253
        or not all(
            label and len(label) <= 63 and label.replace("-", "").isalnum() and label.isascii()
            for label in labels
        )
    ):
        raise ValidationError(f"--host {host!r} is neither an IP address nor a DNS name")
    return x509.DNSName(name)


def _key_usage(*, signs_certificates: bool) -> Any:
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def create_local_ca(
    folder: Path,
    *,
    hosts: tuple[str, ...] | list[str] = (),
    valid: timedelta = timedelta(days=825),
) -> TLSFiles:
    """A new CA and a server certificate it signs for DEFAULT_HOSTS + `hosts`, in `folder`.

    The keys are written 0600 (folder 0700); existing files are replaced.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    names = list(dict.fromkeys([*DEFAULT_HOSTS, *hosts]))
    sans = [_san(h) for h in names]
    now = datetime.now(UTC) - timedelta(minutes=5)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Fleetwright local CA"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Fleetwright local CA {now:%Y-%m-%d}"),
        ]
    )
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + valid)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signs_certificates=True), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + valid)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)  # type: ignore[arg-type]
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_key_usage(signs_certificates=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    def key_pem(k: ec.EllipticCurvePrivateKey) -> bytes:
        return k.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    pem = serialization.Encoding.PEM
    write_private(folder / CA_KEY_FILE, key_pem(ca_key))
    write_private(folder / KEY_FILE, key_pem(key))
    write_private(folder / CA_FILE, ca.public_bytes(pem))
    # the server sends its certificate and the CA's: clients that trust the CA verify the chain
    write_private(folder / CERT_FILE, cert.public_bytes(pem) + ca.public_bytes(pem))
    return TLSFiles(cert=folder / CERT_FILE, key=folder / KEY_FILE, ca=folder / CA_FILE)
