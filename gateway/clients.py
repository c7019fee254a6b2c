"""Internal client systems: bearer tokens shown once, stored hashed, compared in constant time."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

TOKEN_BYTES = 32  # 256-bit tokens


@dataclass(frozen=True, slots=True)
class Client:
    """An internal system allowed to submit under the listed agreements."""

    name: str
    agreements: frozenset[str]
    status: str = "active"
    token_expires_at: datetime | None = None

    def token_valid_at(self, at: datetime) -> bool:
        """A token without expiry is valid until rotated or revoked."""
        return self.token_expires_at is None or at < self.token_expires_at


def new_token() -> str:
    """A fresh random 256-bit bearer token (URL-safe text); shown to the admin once."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """The stored form of a token: SHA-256 is enough for 256 bits of randomness (no brute force)."""
    return hashlib.sha256(token.encode()).hexdigest()


def certificate_sha256(der: bytes) -> str:
    """The fingerprint a client certificate is registered and recognised by (hex SHA-256)."""
    return hashlib.sha256(der).hexdigest()


def pem_certificate_sha256(pem: bytes) -> str:
    """The fingerprint of a PEM client certificate (ValueError if it is not one)."""
    return certificate_sha256(x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER))
