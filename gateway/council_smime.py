"""The council's own S/MIME certificate and key, in the keys directory beside its other keys.

S/MIME messages are signed with it, so partners' mail clients can check who sent them. A
CA-issued certificate is installed with `gateway-admin keys smime --cert --key`; a self-signed
one (`--self-signed`) is for trying the channel out. The key file is written 0600.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.errors import ConfigurationError, GatewayError

CERT_FILE = "smime-cert.pem"
KEY_FILE = "smime-key.pem"
SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class CouncilSmimeError(GatewayError):
    """The council's S/MIME certificate or key is refused."""

    code = "council_smime_invalid"


@dataclass(frozen=True, slots=True)
class CouncilSmime:
    """The council's signing certificate for S/MIME, its private key and any chain."""

    certificate: x509.Certificate
    key: SigningKey
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the certificate's DER, hex."""
        return self.certificate.fingerprint(hashes.SHA256()).hex()

    @property
    def not_after(self) -> datetime:
        """When the certificate expires."""
        return self.certificate.not_valid_after_utc

    def valid_at(self, at: datetime) -> bool:
        """Whether the certificate is within its validity period at `at`."""
        return self.certificate.not_valid_before_utc <= at < self.not_after

    def describe(self) -> dict[str, str]:
        """What `keys smime` shows (public facts only)."""
        return {
            "subject": self.certificate.subject.rfc4514_string(),
            "fingerprint": self.fingerprint,
            "not_after": self.not_after.isoformat(),
        }

    def __repr__(self) -> str:
        return f"CouncilSmime(fingerprint={self.fingerprint!r})"


def paths(keys_dir: Path, cert: Path | None = None, key: Path | None = None) -> tuple[Path, Path]:
    """The certificate and key files: the settings' own, else in the keys directory."""
    return cert or keys_dir / CERT_FILE, key or keys_dir / KEY_FILE


def load_council_smime(cert_path: Path, key_path: Path) -> CouncilSmime | None:
    """The installed certificate and key, or None when none is installed."""
    if not cert_path.exists() and not key_path.exists():
        return None
    try:
        return _parse(cert_path.read_bytes(), key_path.read_bytes())
    except OSError as exc:
        raise ConfigurationError(f"S/MIME certificate: {type(exc).__name__}") from None
    except CouncilSmimeError as exc:
        raise ConfigurationError(f"S/MIME certificate: {exc.message}") from None


def install_council_smime(
    cert_pem: bytes, key_pem: bytes, cert_path: Path, key_path: Path, *, now: datetime
) -> CouncilSmime:
    """Check a certificate and its key belong together and may sign email, then install them."""
    smime = _parse(cert_pem, key_pem)
    if not smime.valid_at(now):
        raise CouncilSmimeError("the certificate is not valid now")
    _check_usage(smime.certificate)
    _write(key_path, key_pem, 0o600)
    _write(cert_path, cert_pem, 0o644)
    return smime


def self_signed(
    address: str, org_id: str, *, now: datetime, days: int = 365
) -> tuple[bytes, bytes]:
    """A self-signed S/MIME certificate and key (PEM) for `address`: for trying the channel."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org_id),
            x509.NameAttribute(NameOID.COMMON_NAME, address),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(address)]), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _parse(cert_pem: bytes, key_pem: bytes) -> CouncilSmime:
    try:
        leaf, *chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise CouncilSmimeError("not a PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise CouncilSmimeError("not an unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CouncilSmimeError("the S/MIME key must be RSA or EC")
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if key.public_key().public_bytes(der, public) != leaf.public_key().public_bytes(der, public):
        raise CouncilSmimeError("the key does not belong to the certificate")
    return CouncilSmime(leaf, key, tuple(chain))


def _check_usage(cert: x509.Certificate) -> None:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.digital_signature:
            raise CouncilSmimeError("key usage does not allow signing")
    except x509.ExtensionNotFound:
        pass
    try:
        extended = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return
    if ExtendedKeyUsageOID.EMAIL_PROTECTION not in extended:
        raise CouncilSmimeError("extended key usage does not allow email protection")


def _write(path: Path, data: bytes, mode: int) -> None:
    """Atomically, so a running gateway never reads half a file."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    temp.replace(path)
