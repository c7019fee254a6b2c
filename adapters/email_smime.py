"""S/MIME (RFC 8551) for partners that hold a certificate: signed by the council, then enveloped.

The readable MIME entity is clear-signed (multipart/signed, SHA-256) with the council's S/MIME
certificate, and that whole signed entity enveloped to the partner's RSA certificate with
AES-256-CBC, which is what `cryptography`'s PKCS7EnvelopeBuilder supports. Any S/MIME client,
or `openssl cms -decrypt` then `-verify`, opens it. Receipts digest the DER of the enveloped CMS.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7

from gateway.council_smime import CouncilSmime

SMIME_TYPE = "enveloped-data"
FILE_NAME = "smime.p7m"


@lru_cache(maxsize=64)
def recipient_certificate(pem: str) -> x509.Certificate:
    """A partner's certificate, parsed once (it was checked when registered)."""
    return x509.load_pem_x509_certificate(pem.encode("ascii"))


def sign_and_envelope(entity: bytes, signer: CouncilSmime, recipient_pem: str) -> bytes:
    """The DER CMS EnvelopedData of the council-signed `entity` (CRLF MIME bytes)."""
    builder = pkcs7.PKCS7SignatureBuilder().set_data(entity)
    builder = builder.add_signer(signer.certificate, signer.key, hashes.SHA256())
    for extra in signer.chain:
        builder = builder.add_certificate(extra)
    signed = builder.sign(
        serialization.Encoding.SMIME,
        [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary],
    )
    return (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(signed)
        .add_recipient(recipient_certificate(recipient_pem))
        .set_content_encryption_algorithm(algorithms.AES256)
        .encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )
