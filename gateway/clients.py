"""Internal client systems: bearer tokens shown once, stored hashed, compared in constant time."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

TOKEN_BYTES = 32  # 256-bit tokens


@dataclass(frozen=True, slots=True)
class Client:
    """An internal system allowed to submit under the listed agreements."""

    name: str
    agreements: frozenset[str]
    status: str = "active"


def new_token() -> str:
    """A fresh random 256-bit bearer token (URL-safe text); shown to the admin once."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """The stored form of a token: SHA-256 is enough for 256 bits of randomness (no brute force)."""
    return hashlib.sha256(token.encode()).hexdigest()
