"""Seal a disclosure as a nested JWT (RFC 7519 s5.2): signed by the council, encrypted for
exactly one partner key. Also the partner's side (open an envelope) for the partner
simulator, the demo and tests; receipts live in gateway.receipts and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol

from gateway import jose
from gateway.errors import GatewayError
from gateway.partner_keys import PartnerKey, PartnerKeyError
from gateway.receipts import ReceiptError, VerifiedReceipt, make_receipt, verify_receipt
from gateway.signer import Signer

__all__ = [
    "EnvelopeAgreement",
    "EnvelopeClaims",
    "EnvelopeError",
    "ReceiptError",
    "SealedEnvelope",
    "SignedDisclosure",
    "VerifiedReceipt",
    "make_receipt",
    "open_envelope",
    "seal",
    "verify_receipt",
]

CLOCK_SKEW = timedelta(minutes=5)
# Claims whose JSON passes this many characters are serialised again in pieces, twice (to
# sign, then to encrypt), and not kept whole: slower, but no whole copy of a large record
# outlives the first look at its size.
STREAMED_CLAIMS = 256 * 1024
# The envelope contract's version (docs/keys-and-envelopes.md). Claims are only ever added
# within a version, and partners ignore claims they do not know, so additions break no one.
CONTRACT_VERSION = 1
_REQUIRED = ("iss", "aud", "jti", "iat", "agreement", "purpose", "subject", "data")
_ONWARD_SHARING = ("prohibited", "listed", "with_consent")


class EnvelopeError(GatewayError):
    """An envelope cannot be sealed or opened; the code says which check failed."""

    code = "envelope_malformed"


@dataclass(frozen=True, slots=True)
class EnvelopeAgreement:
    """The agreement (and its exact version) a disclosure was made under."""

    id: str
    version: int | str


@dataclass(frozen=True, slots=True)
class EnvelopeClaims:
    """The JWT claims of one disclosure, as the partner will read them."""

    iss: str
    aud: str
    jti: str
    iat: datetime
    agreement: EnvelopeAgreement
    purpose: str
    subject: Mapping[str, Any]
    data: Mapping[str, Any]
    retain_until: date
    onward_sharing: str
    exp: datetime | None = None  # receipts after it are accepted and recorded as late
    onward_recipients: tuple[str, ...] = ()  # who the partner may pass it to, when `listed`
    contract_version: int = CONTRACT_VERSION

    def to_jwt(self) -> dict[str, Any]:
        """The JSON claims set (iat, nbf, exp as NumericDates, retain_until as an ISO date)."""
        times = {"iat": int(self.iat.timestamp()), "nbf": int(self.iat.timestamp())}
        if self.exp is not None:
            times["exp"] = int(self.exp.timestamp())
        return {
            "iss": self.iss,
            "aud": self.aud,
            "jti": self.jti,
            **times,
            "agreement": {"id": self.agreement.id, "version": self.agreement.version},
            "purpose": self.purpose,
            "subject": dict(self.subject),
            "data": dict(self.data),
            "retain_until": self.retain_until.isoformat(),
            "onward_sharing": self.onward_sharing,
            **(
                {"onward_recipients": list(self.onward_recipients)}
                if self.onward_recipients
                else {}
            ),
            "contract_version": self.contract_version,
        }

    @classmethod
    def from_jwt(cls, claims: Mapping[str, Any]) -> EnvelopeClaims:
        """Parse and type-check a claims set; `envelope_malformed` names the bad claim."""
        for name in _REQUIRED:
            if name not in claims:
                raise EnvelopeError(f"claim {name!r} is missing")
        agreement = claims["agreement"]
        checks = {
            "iss": _is_text(claims["iss"]),
            "aud": _is_text(claims["aud"]),
            "jti": _is_text(claims["jti"]),
            "iat": isinstance(claims["iat"], int) and not isinstance(claims["iat"], bool),
            "agreement": isinstance(agreement, dict)
            and _is_text(agreement.get("id"))
            and isinstance(agreement.get("version"), int | str),
            "purpose": _is_text(claims["purpose"]),
            "subject": isinstance(claims["subject"], dict),
            "data": isinstance(claims["data"], dict),
            "onward_sharing": claims.get("onward_sharing") in _ONWARD_SHARING,
            "nbf": _is_numeric_date(claims.get("nbf", 0)),
            "exp": _is_numeric_date(claims.get("exp", 0)),
            "onward_recipients": _is_text_list(claims.get("onward_recipients", [])),
            "contract_version": _is_version(claims.get("contract_version", 1)),
        }
        for name, ok in checks.items():
            if not ok:
                raise EnvelopeError(f"claim {name!r} has the wrong type or value")
        try:
            retain_until = date.fromisoformat(claims["retain_until"])
        except (KeyError, TypeError, ValueError):
            raise EnvelopeError("claim 'retain_until' must be an ISO date") from None
        return cls(
            iss=claims["iss"],
            aud=claims["aud"],
            jti=claims["jti"],
            iat=datetime.fromtimestamp(claims["iat"], UTC),
            agreement=EnvelopeAgreement(agreement["id"], agreement["version"]),
            purpose=claims["purpose"],
            subject=claims["subject"],
            data=claims["data"],
            retain_until=retain_until,
            onward_sharing=claims["onward_sharing"],
            exp=datetime.fromtimestamp(claims["exp"], UTC) if "exp" in claims else None,
            onward_recipients=tuple(claims.get("onward_recipients", ())),
            # Envelopes sealed before the claim existed are of the first contract version.
            contract_version=claims.get("contract_version", 1),
        )


@dataclass(frozen=True, slots=True)
class SealedEnvelope:
    """The bytes that leave (a compact JWE), their digest and the key ids used."""

    body: bytes
    digest: str
    signing_kid: str
    encryption_kid: str

    def __repr__(self) -> str:
        return (
            f"SealedEnvelope(bytes={len(self.body)}, digest={self.digest!r}, "
            f"signing_kid={self.signing_kid!r}, encryption_kid={self.encryption_kid!r})"
        )


@dataclass(frozen=True, slots=True)
class SignedDisclosure:
    """The council-signed compact JWS of a disclosure (plaintext: never stored or logged)."""

    token: bytes
    signing_kid: str

    def __repr__(self) -> str:
        return f"SignedDisclosure(bytes={len(self.token)}, signing_kid={self.signing_kid!r})"


class SignerSource(Protocol):
    """Where the council's signing key in force comes from (the keyring)."""

    def active_signer(self, now: datetime) -> Signer: ...


class CouncilSealer:
    """Seals in the event loop with the council key active at the claims' `iat`."""

    def __init__(self, keys: SignerSource) -> None:
        self._keys = keys

    async def seal(self, claims: EnvelopeClaims, recipient: PartnerKey) -> SealedEnvelope:
        """Sign, then encrypt for `recipient`."""
        return seal(claims, self._keys.active_signer(claims.iat), recipient)

    async def sign(self, claims: EnvelopeClaims) -> SignedDisclosure:
        """Sign only: for a channel that carries the signed JWT itself (email)."""
        if claims.iat.tzinfo is None:
            raise EnvelopeError("iat must carry a time zone", code="envelope_claims_invalid")
        signer = self._keys.active_signer(claims.iat)
        payload = claims_pieces(claims.to_jwt())
        token = signer.sign_detached(payload, typ="JWT").compact(payload)
        return SignedDisclosure(token, signer.kid)


def seal(claims: EnvelopeClaims, signer: Signer, recipient: PartnerKey) -> SealedEnvelope:
    """Sign the claims with the council key, then encrypt them for the partner's key."""
    check_recipient(claims, recipient)
    return seal_jwt(claims.to_jwt(), signer, recipient.kid, recipient.jwk)


def check_recipient(claims: EnvelopeClaims, recipient: PartnerKey) -> None:
    """What `seal` checks before it signs: a zoned iat, a usable key of the audience's."""
    if claims.iat.tzinfo is None:
        raise EnvelopeError("iat must carry a time zone", code="envelope_claims_invalid")
    if recipient.use != "enc" or not recipient.usable_at(claims.iat):
        raise PartnerKeyError("the partner key is not usable now", code="partner_key_missing")
    if claims.aud != recipient.partner_id:
        raise EnvelopeError("aud is not the key's partner", code="envelope_wrong_recipient")
    if claims.onward_sharing not in _ONWARD_SHARING:
        raise EnvelopeError("onward_sharing is not a known value", code="envelope_claims_invalid")


def seal_jwt(
    jwt: Mapping[str, Any],
    signer: Signer,
    kid: str,
    jwk: Mapping[str, Any],
    *,
    typ: str = "JWT",
) -> SealedEnvelope:
    """`seal` after `check_recipient`, from the claims set (`EnvelopeClaims.to_jwt`).

    `typ` is the signed content's type: `JWT` for a disclosure, its own for a record of another
    kind (an Article 19 notice), so neither is taken for the other.
    """
    key, wrap = _encryption_key(jwk)
    header = {"alg": wrap, "enc": jose.CONTENT_ENCRYPTION, "cty": "JWT", "kid": kid}
    # A large record is not copied whole again here: its JSON is made twice in pieces, once to
    # sign it and once into the JWE, whose bytes are written once; only those bytes remain.
    payload = claims_pieces(jwt)
    signed = signer.sign_detached(payload, typ=typ)
    body = jose.encrypt_pieces(signed.pieces(payload), signed.length, key, header)
    return SealedEnvelope(body, jose.b64url_digest(body), signer.kid, kid)


def sign_jwt(jwt: Mapping[str, Any], signer: Signer, *, typ: str = "JWT") -> str:
    """The council-signed compact JWS of a claims set: what every channel carries inside."""
    payload = claims_pieces(jwt)
    return signer.sign_detached(payload, typ=typ).compact(payload).decode("ascii")


def claims_pieces(jwt: Mapping[str, Any]) -> Iterable[bytes]:
    """The JSON of a claims set, as signed, to be read more than once: an ordinary record's
    made once, whole (json's fast encoder); a large one's made again, in pieces, at each read.
    `envelope_claims_invalid` for what is not JSON, `envelope_too_large` past the limit."""
    try:
        text = jose.canonical_json_text(jwt)
        if len(text) > STREAMED_CLAIMS:
            return _ClaimsInPieces(jwt)
        payload = text.encode()
    except (TypeError, ValueError):
        raise _not_json() from None
    _check_size(len(payload))
    return (payload,)


class _ClaimsInPieces:
    """A large claims set's JSON, made in pieces each time it is iterated."""

    def __init__(self, jwt: Mapping[str, Any]) -> None:
        self._jwt = jwt

    def __iter__(self) -> Iterator[bytes]:
        size = 0
        try:
            for piece in jose.canonical_json_pieces(self._jwt):
                size += len(piece)
                _check_size(size)
                yield piece
        except (TypeError, ValueError):
            raise _not_json() from None


def _not_json() -> EnvelopeError:
    # json's message names only the type, but say nothing about values at all.
    return EnvelopeError("a claim is not JSON", code="envelope_claims_invalid")


def _check_size(size: int) -> None:
    if size > jose.MAX_CLAIMS_BYTES:
        raise EnvelopeError("the record is over the size limit", code="envelope_too_large")


@lru_cache(maxsize=256)
def _cached_key(members: tuple[tuple[str, Any], ...]) -> tuple[jose.JoseKey, str]:
    key = jose.import_public_jwk(dict(members))
    return key, jose.key_wrap_alg_for(key)


def _encryption_key(jwk: Mapping[str, Any]) -> tuple[jose.JoseKey, str]:
    """Importing a JWK validates the point; cache it, since partners seal thousands a day."""
    try:
        return _cached_key(tuple(sorted(jwk.items())))
    except TypeError:  # an unhashable member (a list): import without the cache
        key = jose.import_public_jwk(jwk)
        return key, jose.key_wrap_alg_for(key)
    except jose.JoseFailure as exc:
        raise PartnerKeyError(f"the partner key is refused: {exc.message}") from None


def open_envelope(
    body: bytes,
    *,
    decryption_key: Mapping[str, Any] | jose.JoseKey,
    council_jwks: Mapping[str, Any],
    expected_audience: str,
    now: datetime,
    expected_issuer: str | None = None,
) -> dict[str, Any]:
    """Partner side: decrypt, verify the council's signature by JWKS kid, check the claims.

    A record of another kind (an Article 19 notice) is refused with `envelope_not_a_disclosure`.
    """
    claims = open_signed(body, decryption_key, council_jwks, typ="JWT")
    return _checked(claims, expected_audience, now, expected_issuer)


def verify_disclosure(
    token: bytes,
    *,
    council_jwks: Mapping[str, Any],
    expected_audience: str,
    now: datetime,
    expected_issuer: str | None = None,
) -> dict[str, Any]:
    """Partner side, for what comes without a JWE (the email baseline's `.jwt` attachment):
    verify the council's signature by JWKS kid and check the claims, as `open_envelope` does."""
    try:
        claims = _verified(token, council_jwks, typ="JWT")
    except jose.JoseFailure as exc:
        raise EnvelopeError(exc.message, code=f"envelope_{exc.reason}") from None
    return _checked(claims, expected_audience, now, expected_issuer)


def _checked(
    claims: dict[str, Any], expected_audience: str, now: datetime, expected_issuer: str | None
) -> dict[str, Any]:
    parsed = EnvelopeClaims.from_jwt(claims)
    if parsed.aud != expected_audience:
        raise EnvelopeError("envelope is for another partner", code="envelope_wrong_audience")
    if expected_issuer is not None and parsed.iss != expected_issuer:
        raise EnvelopeError("envelope is from another issuer", code="envelope_wrong_issuer")
    if parsed.iat > now + CLOCK_SKEW or claims.get("nbf", 0) > (now + CLOCK_SKEW).timestamp():
        raise EnvelopeError("envelope is issued in the future", code="envelope_not_yet_valid")
    return claims


def open_signed(
    body: bytes,
    decryption_key: Mapping[str, Any] | jose.JoseKey,
    council_jwks: Mapping[str, Any],
    *,
    typ: str,
) -> dict[str, Any]:
    """Decrypt a compact JWE, check the signed content is of type `typ`, verify, parse."""
    try:
        header = jose.read_header(body, 5)
        key, named = _decryption_key(decryption_key)
        if header.get("kid") is not None and named is not None and header["kid"] != named:
            raise EnvelopeError("envelope is for another key", code="envelope_wrong_key")
        if str(header.get("cty", "")).upper() != "JWT":
            raise EnvelopeError("envelope content type is not JWT")
        return _verified(jose.decrypt_jwe(body, key), council_jwks, typ=typ)
    except jose.JoseFailure as exc:
        raise EnvelopeError(exc.message, code=f"envelope_{exc.reason}") from None


def _verified(signed: bytes, council_jwks: Mapping[str, Any], *, typ: str) -> dict[str, Any]:
    """The claims of a council-signed compact JWS whose content is of type `typ`."""
    found = jose.read_header(signed, 3).get("typ", "JWT")
    if found != typ:
        code = "envelope_not_a_disclosure" if typ == "JWT" else "envelope_malformed"
        raise EnvelopeError(f"signed content type is not {typ}", code=code)
    payload = jose.verify_compact(signed, council_jwks, algorithms=jose.COUNCIL_SIGNING_ALGS)
    return jose.parse_json_object(payload)


def _decryption_key(given: Mapping[str, Any] | jose.JoseKey) -> tuple[jose.JoseKey, Any]:
    """The private key and its kid; an imported key may be passed (RSA imports are slow)."""
    if not isinstance(given, Mapping):
        return given, given.kid
    try:
        return jose.import_private_jwk(given), given.get("kid")
    except jose.JoseFailure as exc:
        raise EnvelopeError(exc.message, code="envelope_key_invalid") from None


def _is_numeric_date(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**40


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _is_text_list(value: Any) -> bool:
    return isinstance(value, list) and all(_is_text(item) for item in value)


def _is_version(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
