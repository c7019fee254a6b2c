"""What the test PKIs share: certificate names and self-signed CA certificates."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

CaKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def common_name(common: str) -> x509.Name:
    """A name of one common name."""
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def ca_certificate(
    key: CaKey,
    common: str,
    *,
    not_before: dt.datetime,
    not_after: dt.datetime,
    path_length: int | None = 0,
    digital_signature: bool = True,
) -> x509.Certificate:
    """A self-signed CA certificate for `key` that signs certificates and CRLs."""
    usage = x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(common_name(common))
        .issuer_name(common_name(common))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
