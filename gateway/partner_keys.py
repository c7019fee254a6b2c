"""Partners' public keys: validated on registration, selected by pure functions of the clock."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from joserfc.jwk import ECKey, OKPKey, RSAKey

from gateway import jose
from gateway.errors import GatewayError
from gateway.store.partners_repo import StoredPartnerKey

KeyUse = Literal["enc", "sig"]
KeyStatus = Literal["active", "retired", "revoked"]
KEY_STATUSES = ("active", "retired", "revoked")
PARTNER_KEY_REVOKED = "partner_key_revoked"
PARTNER_KEY_RETIRED = "partner_key_retired"
PartnerKeyKind = Literal["ec", "okp", "rsa"]

# The public members kept from a registered JWK; anything else (x5c, key_ops, ...) is dropped.
_PUBLIC_MEMBERS = {
    "EC": ("kty", "crv", "x", "y"),
    "OKP": ("kty", "crv", "x"),
    "RSA": ("kty", "n", "e"),
}


class PartnerKeyError(GatewayError):
    """A partner key is refused, or no usable key exists."""

    code = "partner_key_invalid"


@dataclass(frozen=True, slots=True)
class PartnerKey:
    """One public key a partner registered, for encryption to it or verifying its receipts."""

    partner_id: str
    kid: str
    use: KeyUse
    jwk: Mapping[str, Any]
    not_before: datetime | None = None
    not_after: datetime | None = None
    status: KeyStatus = "active"
    revoked_reason: str | None = None
    revoked_at: datetime | None = None

    @classmethod
    def from_jwk(
        cls,
        partner_id: str,
        jwk: Mapping[str, Any],
        *,
        use: KeyUse,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        kid: str | None = None,
    ) -> PartnerKey:
        """Register a public JWK: checks type, curve, size and use; refuses private keys."""
        if not partner_id:
            raise PartnerKeyError("partner id is required")
        if use not in ("enc", "sig"):
            raise PartnerKeyError("use must be enc or sig")
        if jwk.get("use") not in (None, use):
            raise PartnerKeyError(f"the JWK says use={jwk.get('use')!r}, registered as {use}")
        try:
            key = jose.import_public_jwk(jwk)
            alg = jose.key_wrap_alg_for(key) if use == "enc" else jose.signing_alg_for(key)
        except jose.JoseFailure as exc:
            raise PartnerKeyError(f"{use} key refused: {exc.message}") from None
        if "alg" in jwk and not _alg_accepted(str(jwk["alg"]), alg, use):
            raise PartnerKeyError(f"the JWK's alg {jwk['alg']!r} does not fit a {use} key")
        kid = kid or _optional_str(jwk.get("kid")) or key.thumbprint()
        if len(kid) > 200:
            raise PartnerKeyError("kid must be at most 200 characters")
        public = {name: jwk[name] for name in _PUBLIC_MEMBERS[str(jwk["kty"])]}
        public.update(kid=kid, use=use)
        _check_window(not_before, not_after)
        return cls(partner_id, kid, use, public, not_before, not_after)

    @classmethod
    def from_pem(
        cls,
        partner_id: str,
        pem: bytes | str,
        *,
        use: KeyUse,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        kid: str | None = None,
    ) -> PartnerKey:
        """Register a PEM public key (SubjectPublicKeyInfo); private keys are refused."""
        data = pem.encode() if isinstance(pem, str) else pem
        if b"PRIVATE KEY" in data:
            raise PartnerKeyError("a private key was given where a public key is expected")
        for key_type in (ECKey, OKPKey, RSAKey):
            try:
                key = key_type.import_key(data)
            except Exception:  # noqa: S112 - cryptography raises many types for a wrong key type
                continue
            if key.is_private:
                raise PartnerKeyError("a private key was given where a public key is expected")
            jwk = key.as_dict(private=False)
            return cls.from_jwk(
                partner_id, jwk, use=use, not_before=not_before, not_after=not_after, kid=kid
            )
        raise PartnerKeyError("not a PEM public key of type EC, OKP or RSA")

    def valid_at(self, when: datetime) -> bool:
        """Inside the validity window (status is checked separately)."""
        if self.not_before is not None and when < self.not_before:
            return False
        return self.not_after is None or when < self.not_after

    def usable_at(self, when: datetime) -> bool:
        """Active and inside its validity window: the only keys we encrypt to or accept."""
        return self.status == "active" and self.valid_at(when)

    def revoke(self, reason: str, now: datetime) -> PartnerKey:
        """A revoked copy: never used to encrypt and never accepted on a receipt again."""
        return dataclasses.replace(self, status="revoked", revoked_reason=reason, revoked_at=now)

    @property
    def alg(self) -> str:
        """The algorithm used with this key (ES256, EdDSA, ECDH-ES+A256KW, RSA-OAEP-256)."""
        key = self.public_key()
        return jose.key_wrap_alg_for(key) if self.use == "enc" else jose.signing_alg_for(key)

    def public_key(self) -> jose.JoseKey:
        """The joserfc key object (imported once per distinct JWK, then shared: read-only)."""
        return _imported(json.dumps(self.jwk, sort_keys=True))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict for storage (`alg` is derived, and ignored by from_dict)."""
        return {
            "partner_id": self.partner_id,
            "kid": self.kid,
            "use": self.use,
            "alg": self.alg,
            "jwk": dict(self.jwk),
            "not_before": _iso(self.not_before),
            "not_after": _iso(self.not_after),
            "status": self.status,
            "revoked_reason": self.revoked_reason,
            "revoked_at": _iso(self.revoked_at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PartnerKey:
        """Rebuild a stored key, re-validating the JWK on the way in."""
        key = cls.from_jwk(
            data["partner_id"],
            data["jwk"],
            use=data["use"],
            not_before=_parse(data.get("not_before")),
            not_after=_parse(data.get("not_after")),
            kid=data["kid"],
        )
        status = data.get("status", "active")
        if status not in KEY_STATUSES:
            raise PartnerKeyError("status must be active, retired or revoked")
        return dataclasses.replace(
            key,
            status=status,
            revoked_reason=data.get("revoked_reason"),
            revoked_at=_parse(data.get("revoked_at")),
        )

    def to_store(self, *, registered_at: datetime) -> StoredPartnerKey:
        """The store's row for this key; without `not_before` it is valid from registration."""
        return StoredPartnerKey(
            partner_id=self.partner_id,
            kid=self.kid,
            use=self.use,
            alg=self.alg,
            jwk=dict(self.jwk),
            not_before=self.not_before or registered_at,
            not_after=self.not_after,
            status=self.status,
            revoked_reason=self.revoked_reason,
        )

    @classmethod
    def from_store(cls, row: StoredPartnerKey) -> PartnerKey:
        """A stored key as the domain model, JWK re-validated (the store keeps no revoked_at)."""
        key = cls.from_jwk(
            row.partner_id,
            row.jwk,
            use=row.use,  # type: ignore[arg-type]
            not_before=row.not_before,
            not_after=row.not_after,
            kid=row.kid,
        )
        if row.status not in KEY_STATUSES:
            raise PartnerKeyError("status must be active, retired or revoked")
        return dataclasses.replace(key, status=row.status, revoked_reason=row.revoked_reason)  # type: ignore[arg-type]


def encryption_key_for(keys: Iterable[PartnerKey], partner_id: str, now: datetime) -> PartnerKey:
    """The partner's newest usable encryption key; `partner_key_missing` when there is none."""
    usable = [k for k in keys if k.partner_id == partner_id and k.use == "enc" and k.usable_at(now)]
    if not usable:
        raise PartnerKeyError(
            "the partner has no usable encryption key", code="partner_key_missing"
        )
    return max(
        usable, key=lambda k: (k.not_before or datetime.min.replace(tzinfo=now.tzinfo), k.kid)
    )


class KeyFacts(Protocol):
    """What deciding about an envelope's key needs (a PartnerKey or a stored key row)."""

    @property
    def partner_id(self) -> str: ...

    @property
    def kid(self) -> str: ...

    @property
    def use(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def not_after(self) -> datetime | None: ...


def sealed_key_refusal(
    keys: Iterable[KeyFacts], partner_id: str, key_ids: Iterable[str], now: datetime
) -> str | None:
    """Why an envelope sealed to these key ids may no longer be sent, or None.

    Never once its key is revoked; a retired key's envelopes until the retirement date (its
    `not_after`). `key_ids` are those recorded with the disclosure (council signing kid,
    partner encryption kid); only the partner's encryption keys among them count.
    """
    sealed = set(key_ids)
    for key in keys:
        if key.partner_id != partner_id or key.use != "enc" or key.kid not in sealed:
            continue
        if key.status == "revoked":
            return PARTNER_KEY_REVOKED
        if key.status == "retired" and key.not_after is not None and now >= key.not_after:
            return PARTNER_KEY_RETIRED
    return None


def signing_keys_for(keys: Iterable[PartnerKey], partner_id: str, kid: str) -> list[PartnerKey]:
    """The partner's registered signature keys with this kid, whatever their status."""
    return [k for k in keys if k.partner_id == partner_id and k.use == "sig" and k.kid == kid]


def generate_partner_keys(kind: PartnerKeyKind) -> tuple[dict[str, Any], dict[str, Any]]:
    """A partner's private (encryption, signing) JWKs, for the simulator, the demo and tests."""
    enc: jose.JoseKey
    sig: jose.JoseKey
    if kind == "ec":
        enc, sig = ECKey.generate_key("P-256"), ECKey.generate_key("P-256")
    elif kind == "okp":
        enc, sig = OKPKey.generate_key("X25519"), OKPKey.generate_key("Ed25519")
    elif kind == "rsa":
        enc, sig = RSAKey.generate_key(jose.MIN_RSA_BITS), ECKey.generate_key("P-256")
    else:
        raise PartnerKeyError(f"unknown key kind {kind!r}")
    return (
        enc.as_dict(private=True, kid=enc.thumbprint(), use="enc"),
        sig.as_dict(private=True, kid=sig.thumbprint(), use="sig"),
    )


def public_jwk(private_jwk: Mapping[str, Any]) -> dict[str, Any]:
    """The public half of a private JWK, keeping kid and use (what a partner registers)."""
    key = jose.import_private_jwk(private_jwk)
    extra = {name: private_jwk[name] for name in ("kid", "use") if name in private_jwk}
    return key.as_dict(private=False, **extra)


def _alg_accepted(declared: str, expected: str, use: KeyUse) -> bool:
    if use == "sig":
        return jose.canonical_alg(declared) == jose.canonical_alg(expected)
    return declared == expected


def _check_window(not_before: datetime | None, not_after: datetime | None) -> None:
    for moment in (not_before, not_after):
        if moment is not None and moment.tzinfo is None:
            raise PartnerKeyError("validity dates must carry a time zone")
    if not_before is not None and not_after is not None and not_after <= not_before:
        raise PartnerKeyError("not_after must be later than not_before")


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _parse(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


@functools.lru_cache(maxsize=1024)
def _imported(jwk_json: str) -> jose.JoseKey:
    """Importing a key (decoding and checking the point) costs more than sealing around it."""
    return jose.import_public_jwk(json.loads(jwk_json))
