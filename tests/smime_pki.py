"""Test certificates for S/MIME: a partner CA, partner certificates, the council's own."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.pki_support import ca_certificate, common_name

PARTNER_MAILBOX = "fraud.referrals@dwp.example"


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, as PEM."""

    cert_pem: bytes
    key_pem: bytes

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """Write both files; returns (cert, key)."""
        directory.mkdir(parents=True, exist_ok=True)
        cert, key = directory / f"{stem}.pem", directory / f"{stem}.key"
        cert.write_bytes(self.cert_pem)
        key.write_bytes(self.key_pem)
        key.chmod(0o600)
        return cert, key


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_ca(common: str = "Partner Test CA") -> Issued:
    """A self-signed CA that partner certificates chain to."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    cert = ca_certificate(
        key,
        common,
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=3650),
        path_length=None,
        digital_signature=False,
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _pem(key))


def make_partner_cert(
    ca: Issued | None = None,
    *,
    mailbox: str = PARTNER_MAILBOX,
    days: int = 365,
    key_encipherment: bool = True,
    eku: x509.ObjectIdentifier | None = ExtendedKeyUsageOID.EMAIL_PROTECTION,
    ec_key: bool = False,
    now: dt.datetime | None = None,
) -> Issued:
    """A partner's S/MIME certificate, issued by `ca` (self-signed without one)."""
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
        ec.generate_private_key(ec.SECP256R1())
        if ec_key
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    now = now or dt.datetime.now(dt.UTC)
    if ca is None:
        issuer_name, issuer_key = common_name(mailbox), key
    else:
        issuer_cert = x509.load_pem_x509_certificate(ca.cert_pem)
        loaded = serialization.load_pem_private_key(ca.key_pem, None)
        assert isinstance(loaded, rsa.RSAPrivateKey)
        issuer_name, issuer_key = issuer_cert.subject, loaded
    builder = (
        x509.CertificateBuilder()
        .subject_name(common_name(mailbox))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=2))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(mailbox)]), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=key_encipherment,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
    if ca is not None:
        ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    cert = builder.sign(issuer_key, hashes.SHA256())
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _pem(key))
