"""The simulated partner's own keys: generated once into a directory, loaded on every start.

Private JWKs go to `private-enc.jwk.json` and `private-sig.jwk.json` (mode 0600, in a 0700
directory); their public halves to `public-enc.jwk.json` and `public-sig.jwk.json`, which is
what the council side registers for this partner.
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway import jose
from gateway.errors import GatewayError
from gateway.partner_keys import PartnerKeyKind, generate_partner_keys, public_jwk

PRIVATE_ENC = "private-enc.jwk.json"
PRIVATE_SIG = "private-sig.jwk.json"
PUBLIC_ENC = "public-enc.jwk.json"
PUBLIC_SIG = "public-sig.jwk.json"


class PartnerKeyFilesError(GatewayError):
    """The key directory holds something we must not use (wrong mode, wrong type, bad JSON)."""

    code = "partner_keys_invalid"


class KeyType(enum.StrEnum):
    """The partner's encryption key type (its signing key follows: Ed25519 with X25519)."""

    EC = "ec"
    X25519 = "x25519"
    RSA = "rsa"


_KIND: dict[KeyType, PartnerKeyKind] = {KeyType.EC: "ec", KeyType.X25519: "okp", KeyType.RSA: "rsa"}


@dataclass(frozen=True, slots=True)
class PartnerKeyPair:
    """The partner's private encryption and signing JWKs; a repr never shows them."""

    encryption: Mapping[str, Any]
    signing: Mapping[str, Any]

    def __repr__(self) -> str:
        return f"PartnerKeyPair(enc_kid={self.enc_kid!r}, sig_kid={self.sig_kid!r})"

    @property
    def enc_kid(self) -> str:
        """The kid the council's JWE header names."""
        return str(self.encryption["kid"])

    @property
    def sig_kid(self) -> str:
        """The kid our receipts carry."""
        return str(self.signing["kid"])

    @property
    def key_type(self) -> KeyType:
        """What kind of encryption key this is."""
        if self.encryption.get("kty") == "RSA":
            return KeyType.RSA
        return KeyType.X25519 if self.encryption.get("kty") == "OKP" else KeyType.EC

    def public(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The public (encryption, signing) JWKs, with kid and use: what the council registers."""
        return public_jwk(self.encryption), public_jwk(self.signing)


def generate_keys(key_type: KeyType = KeyType.EC) -> PartnerKeyPair:
    """A fresh key pair in memory (for an in-process simulator that needs no files)."""
    enc, sig = generate_partner_keys(_KIND[KeyType(key_type)])
    return PartnerKeyPair(enc, sig)


def load_or_create_keys(directory: Path, key_type: KeyType | None = None) -> PartnerKeyPair:
    """The keys in directory, generating them on first use; a type mismatch is refused."""
    directory = Path(directory)
    if (directory / PRIVATE_ENC).exists() or (directory / PRIVATE_SIG).exists():
        keys = PartnerKeyPair(
            _read_private(directory / PRIVATE_ENC), _read_private(directory / PRIVATE_SIG)
        )
        if key_type is not None and keys.key_type != KeyType(key_type):
            raise PartnerKeyFilesError(
                f"the keys in {directory} are {keys.key_type.value}, not {KeyType(key_type).value};"
                " use another directory"
            )
    else:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        keys = generate_keys(key_type or KeyType.EC)
        _write_private(directory / PRIVATE_ENC, keys.encryption)
        _write_private(directory / PRIVATE_SIG, keys.signing)
    enc_public, sig_public = keys.public()
    _write_public(directory / PUBLIC_ENC, enc_public)
    _write_public(directory / PUBLIC_SIG, sig_public)
    return keys


def _read_private(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_mode & 0o077:
            raise PartnerKeyFilesError(f"private key file {path.name} must have mode 0600")
        jwk = json.loads(path.read_text("utf-8"))
        if not isinstance(jwk, dict):
            raise TypeError("not an object")
        jose.import_private_jwk(jwk)
    except FileNotFoundError:
        raise PartnerKeyFilesError(f"private key file {path.name} is missing") from None
    except (ValueError, TypeError, jose.JoseFailure):
        raise PartnerKeyFilesError(f"private key file {path.name} is not a private JWK") from None
    if not isinstance(jwk.get("kid"), str) or not jwk["kid"]:
        raise PartnerKeyFilesError(f"private key file {path.name} has no kid")
    return jwk


def _write_private(path: Path, jwk: Mapping[str, Any]) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(dict(jwk), handle)
        handle.flush()
        os.fsync(handle.fileno())


def _write_public(path: Path, jwk: Mapping[str, Any]) -> None:
    """Public halves are rewritten each start (atomically), so they always match the keys."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dict(jwk), indent=2) + "\n", "utf-8")
    tmp.chmod(0o644)
    os.replace(tmp, path)
