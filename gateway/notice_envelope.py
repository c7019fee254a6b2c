"""The Article 19 notice envelope: a signed and sealed record of its own kind, never a disclosure.

Sealed exactly like a disclosure (a nested JWT: the council's JWS inside a JWE for one partner
key; for an email partner, the signed JWT itself, held at rest until it is sent, as an email
disclosure is), but the signed content's `typ` is `NOTICE_TYP`, so a partner's disclosure
handler refuses it (`envelope_not_a_disclosure`) rather than file it as data. The claims name
the original disclosures and the field paths concerned and, for a rectification, the corrected
values: the only place those values exist outside the caller's memory
(docs/keys-and-envelopes.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway import jose
from gateway.errors import GatewayError
from gateway.partner_keys import PartnerKey, PartnerKeyError
from gateway.sealing import (
    CLOCK_SKEW,
    CONTRACT_VERSION,
    EnvelopeError,
    SealedEnvelope,
    SignedDisclosure,
    SignerSource,
    open_signed,
    seal_jwt,
    sign_jwt,
)
from gateway.signer import Signer

NOTICE_TYP = "gatehouse-notice+jwt"
NOTICE_KINDS = ("rectification", "erasure", "restriction")
_LIST_CLAIMS = ("disclosures", "fields")


class NoticeClaimsError(GatewayError):
    """A notice's claims are missing or of the wrong type; the message names the claim."""

    code = "notice_malformed"


@dataclass(frozen=True, slots=True)
class NoticeClaims:
    """The JWT claims of one Article 19 notice, as the partner will read them."""

    iss: str
    aud: str
    jti: str
    iat: datetime
    kind: str
    reason: str
    disclosures: tuple[str, ...]
    fields: tuple[str, ...]
    corrections: Mapping[str, Any] = field(default_factory=dict)
    exp: datetime | None = None
    contract_version: int = CONTRACT_VERSION

    def to_jwt(self) -> dict[str, Any]:
        """The JSON claims set (NumericDates for iat, nbf, exp)."""
        times = {"iat": int(self.iat.timestamp()), "nbf": int(self.iat.timestamp())}
        if self.exp is not None:
            times["exp"] = int(self.exp.timestamp())
        notice: dict[str, Any] = {
            "kind": self.kind,
            "article": "UK GDPR Art 19",
            "reason": self.reason,
            "disclosures": list(self.disclosures),
            "fields": list(self.fields),
        }
        if self.corrections:
            notice["corrections"] = dict(self.corrections)
        return {
            "iss": self.iss,
            "aud": self.aud,
            "jti": self.jti,
            **times,
            "notice": notice,
            "contract_version": self.contract_version,
        }

    @classmethod
    def from_jwt(cls, claims: Mapping[str, Any]) -> NoticeClaims:
        """Parse and type-check a claims set; `notice_malformed` names the bad claim."""
        notice = claims.get("notice")
        if not isinstance(notice, dict):
            raise NoticeClaimsError("claim 'notice' is missing or not an object")
        for name in ("iss", "aud", "jti"):
            if not isinstance(claims.get(name), str) or not claims[name]:
                raise NoticeClaimsError(f"claim {name!r} is missing or not text")
        if not isinstance(claims.get("iat"), int) or isinstance(claims["iat"], bool):
            raise NoticeClaimsError("claim 'iat' is not a NumericDate")
        if notice.get("kind") not in NOTICE_KINDS:
            raise NoticeClaimsError("claim 'notice.kind' is not a known kind")
        for name in _LIST_CLAIMS:
            value = notice.get(name)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise NoticeClaimsError(f"claim 'notice.{name}' is not a list of text")
        corrections = notice.get("corrections", {})
        if not isinstance(corrections, dict) or not set(corrections) <= set(notice["fields"]):
            raise NoticeClaimsError("claim 'notice.corrections' names a path not in its fields")
        return cls(
            iss=claims["iss"],
            aud=claims["aud"],
            jti=claims["jti"],
            iat=datetime.fromtimestamp(claims["iat"], UTC),
            kind=notice["kind"],
            reason=str(notice.get("reason", "")),
            disclosures=tuple(notice["disclosures"]),
            fields=tuple(notice["fields"]),
            corrections=corrections,
            exp=datetime.fromtimestamp(claims["exp"], UTC) if "exp" in claims else None,
            contract_version=claims.get("contract_version", CONTRACT_VERSION),
        )


def seal_notice(claims: NoticeClaims, signer: Signer, recipient: PartnerKey) -> SealedEnvelope:
    """Sign the notice with the council key, then encrypt it for the partner's key."""
    if claims.iat.tzinfo is None:
        raise EnvelopeError("iat must carry a time zone", code="envelope_claims_invalid")
    if recipient.use != "enc" or not recipient.usable_at(claims.iat):
        raise PartnerKeyError("the partner key is not usable now", code="partner_key_missing")
    if claims.aud != recipient.partner_id:
        raise EnvelopeError("aud is not the key's partner", code="envelope_wrong_recipient")
    return seal_jwt(claims.to_jwt(), signer, recipient.kid, recipient.jwk, typ=NOTICE_TYP)


def sign_notice(claims: NoticeClaims, signer: Signer) -> SignedDisclosure:
    """Sign only: the email channel carries the signed notice itself (TLS or S/MIME)."""
    if claims.iat.tzinfo is None:
        raise EnvelopeError("iat must carry a time zone", code="envelope_claims_invalid")
    token = sign_jwt(claims.to_jwt(), signer, typ=NOTICE_TYP).encode("ascii")
    return SignedDisclosure(token, signer.kid)


class NoticeSealer:
    """Seals notices with the council key active at the claims' `iat`."""

    def __init__(self, keys: SignerSource) -> None:
        self._keys = keys

    async def seal(self, claims: NoticeClaims, recipient: PartnerKey) -> SealedEnvelope:
        """Sign, then encrypt for `recipient`."""
        return seal_notice(claims, self._keys.active_signer(claims.iat), recipient)

    async def sign(self, claims: NoticeClaims) -> SignedDisclosure:
        """Sign only, for an email partner (held at rest here, sealed at send time)."""
        return sign_notice(claims, self._keys.active_signer(claims.iat))


def open_notice(
    body: bytes,
    *,
    decryption_key: Mapping[str, Any] | jose.JoseKey,
    council_jwks: Mapping[str, Any],
    expected_audience: str,
    now: datetime,
    expected_issuer: str | None = None,
) -> NoticeClaims:
    """Partner side: decrypt, verify the council's signature, check it is a notice for us."""
    claims = open_signed(body, decryption_key, council_jwks, typ=NOTICE_TYP)
    try:
        parsed = NoticeClaims.from_jwt(claims)
    except NoticeClaimsError as exc:
        raise EnvelopeError(exc.message, code="envelope_malformed") from None
    if parsed.aud != expected_audience:
        raise EnvelopeError("notice is for another partner", code="envelope_wrong_audience")
    if expected_issuer is not None and parsed.iss != expected_issuer:
        raise EnvelopeError("notice is from another issuer", code="envelope_wrong_issuer")
    if parsed.iat > now + CLOCK_SKEW:
        raise EnvelopeError("notice is issued in the future", code="envelope_not_yet_valid")
    return parsed
