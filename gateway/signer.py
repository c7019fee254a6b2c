"""Who signs for the council: a small Protocol, so a KMS or HSM can hold the key later."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from gateway import jose


class Signer(Protocol):
    """Signs with one council key; a KMS or HSM can implement this without exposing the key."""

    @property
    def kid(self) -> str:
        """The key id partners find in our JWKS."""
        ...

    @property
    def alg(self) -> str:
        """The JWS alg: ES256 or EdDSA (an Ed25519 key)."""
        ...

    def sign_compact(self, payload: bytes, *, typ: str | None = "JWT") -> str:
        """A compact JWS over payload with header {alg, kid, typ}."""
        ...

    def sign_detached(
        self, payload: Iterable[bytes], *, typ: str | None = "JWT"
    ) -> jose.DetachedSignature:
        """`sign_compact` of the payload given in pieces, without the payload part: for a
        caller that writes a large JWS itself."""
        ...


class FileSigner:
    """A Signer whose private key was loaded from a file; the key never appears in a repr."""

    __slots__ = ("_alg", "_key", "_kid")

    def __init__(self, kid: str, key: jose.JoseKey) -> None:
        self._kid = kid
        self._key = key
        self._alg = jose.signing_alg_for(key)

    @property
    def kid(self) -> str:
        """The key id partners find in our JWKS."""
        return self._kid

    @property
    def alg(self) -> str:
        """The JWS alg: ES256 or EdDSA (an Ed25519 key)."""
        return self._alg

    def sign_compact(self, payload: bytes, *, typ: str | None = "JWT") -> str:
        """A compact JWS over payload with header {alg, kid, typ}."""
        return jose.sign_jws(payload, self._key, self._header(typ))

    def sign_detached(
        self, payload: Iterable[bytes], *, typ: str | None = "JWT"
    ) -> jose.DetachedSignature:
        """`sign_compact` of the payload given in pieces, without the payload part: for a
        caller that writes a large JWS itself."""
        return jose.sign_detached(payload, self._key, self._header(typ))

    def _header(self, typ: str | None) -> dict[str, str]:
        header = {"alg": self._alg, "kid": self._kid}
        if typ is not None:
            header["typ"] = typ
        return header

    def __repr__(self) -> str:
        return f"FileSigner(kid={self._kid!r}, alg={self._alg!r})"
