"""Receipts: a partner's signed statement that it received the exact bytes we sent.

Verification checks, in order, and refuses with its own code at the first failure:
format, algorithm, key (known, not revoked), signature, issuer, audience, time, message id,
digest. Only `sig` keys registered for this partner, active and valid at the receipt's
`iat`, are ever used.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from gateway import jose
from gateway.errors import GatewayError
from gateway.partner_keys import PartnerKey, signing_keys_for

ReceiptStatus = Literal["received", "rejected"]
CLOCK_SKEW = timedelta(minutes=5)
_MAX_TEXT = 500


class ReceiptError(GatewayError):
    """A receipt is refused; the code names the check that failed (never a claim value).

    `signed`: its signature verified against the partner's registered key, so the refusal is
    a partner's act worth auditing; otherwise anyone could have sent it.
    """

    code = "receipt_malformed"
    signed = False


@dataclass(frozen=True, slots=True)
class VerifiedReceipt:
    """A receipt whose signature, issuer, message and digest all matched."""

    receipt_id: str
    status: ReceiptStatus
    reason: str | None
    issued_at: datetime
    kid: str


def make_receipt(
    *,
    partner_id: str,
    council_id: str,
    message_id: str,
    body_received: bytes,
    status: ReceiptStatus,
    reason: str | None = None,
    signing_key: Mapping[str, Any],
    now: datetime,
    receipt_id: str,
) -> bytes:
    """Partner side: sign a receipt over the digest of the exact envelope bytes received."""
    if status not in ("received", "rejected"):
        raise ReceiptError("status must be received or rejected")
    key = jose.import_private_jwk(signing_key)
    kid = signing_key.get("kid") or key.thumbprint()
    claims: dict[str, Any] = {
        "iss": partner_id,
        "aud": council_id,
        "jti": receipt_id,
        "iat": int(now.timestamp()),
        "message_id": message_id,
        "digest": jose.b64url_digest(body_received),
        "status": status,
    }
    if reason is not None:
        claims["reason"] = reason
    header = {"alg": jose.signing_alg_for(key), "typ": "JWT", "kid": kid}
    return jose.sign_jws(jose.canonical_json(claims), key, header).encode("ascii")


def verify_receipt(
    token: bytes,
    *,
    partner_keys: Iterable[PartnerKey],
    partner_id: str,
    council_id: str,
    message_id: str,
    expected_digest: str,
    now: datetime,
) -> VerifiedReceipt:
    """Accept a receipt only if every check passes; otherwise ReceiptError with its code."""
    try:
        header = jose.read_header(token, 3)
    except jose.JoseFailure as exc:
        raise ReceiptError(exc.message, code=f"receipt_{exc.reason}") from None
    if header["alg"] not in jose.RECEIPT_SIGNING_ALGS:
        raise ReceiptError("receipt alg is not allowed", code="receipt_algorithm_not_allowed")
    key = _receipt_key(partner_keys, partner_id, header.get("kid"))
    try:
        payload = jose.verify_jws(token, key.public_key(), jose.RECEIPT_SIGNING_ALGS)
        claims = jose.parse_json_object(payload)
    except jose.JoseFailure as exc:
        raise ReceiptError(exc.message, code=f"receipt_{exc.reason}") from None
    try:
        return _check_claims(
            claims,
            key,
            partner_id=partner_id,
            council_id=council_id,
            message_id=message_id,
            expected_digest=expected_digest,
            now=now,
        )
    except ReceiptError as exc:
        exc.signed = True
        raise


def _check_claims(
    claims: Mapping[str, Any],
    key: PartnerKey,
    *,
    partner_id: str,
    council_id: str,
    message_id: str,
    expected_digest: str,
    now: datetime,
) -> VerifiedReceipt:
    """The checks after the signature verified (the claims are the partner's own)."""
    receipt = _parse(claims, key.kid)
    if claims["iss"] != partner_id:
        raise ReceiptError("receipt is from another partner", code="receipt_wrong_issuer")
    audience = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if council_id not in audience:
        raise ReceiptError("receipt is for another recipient", code="receipt_wrong_audience")
    if receipt.issued_at > now + CLOCK_SKEW:
        raise ReceiptError("receipt is issued in the future", code="receipt_not_yet_valid")
    if not key.valid_at(receipt.issued_at):
        raise ReceiptError("signing key was not valid at iat", code="receipt_expired_key")
    if claims["message_id"] != message_id:
        raise ReceiptError("receipt is for another message", code="receipt_wrong_message")
    if not hmac.compare_digest(str(claims["digest"]), expected_digest):
        raise ReceiptError("receipt digest differs", code="receipt_digest_mismatch")
    return receipt


def _receipt_key(keys: Iterable[PartnerKey], partner_id: str, kid: Any) -> PartnerKey:
    if not isinstance(kid, str):
        raise ReceiptError("receipt names no kid", code="receipt_unknown_key")
    candidates = signing_keys_for(keys, partner_id, kid)
    if not candidates:
        raise ReceiptError("no registered signing key has this kid", code="receipt_unknown_key")
    # A retired key verifies until its retirement date (its not_after, checked against iat).
    active = [k for k in candidates if k.status in ("active", "retired")]
    if not active:
        raise ReceiptError("the signing key is revoked", code="receipt_revoked_key")
    return active[0]


def _parse(claims: Mapping[str, Any], kid: str) -> VerifiedReceipt:
    """Type-check the claims set; names the claim at fault, never its value."""
    for name in ("iss", "aud", "jti", "iat", "message_id", "digest", "status"):
        if name not in claims:
            raise ReceiptError(f"claim {name!r} is missing")
    for name in ("iss", "jti", "message_id", "digest"):
        if not isinstance(claims[name], str) or not 0 < len(claims[name]) <= _MAX_TEXT:
            raise ReceiptError(f"claim {name!r} must be a short string")
    aud = claims["aud"]
    if not (
        isinstance(aud, str) or (isinstance(aud, list) and all(isinstance(a, str) for a in aud))
    ):
        raise ReceiptError("claim 'aud' must be a string or a list of strings")
    iat = claims["iat"]
    if isinstance(iat, bool) or not isinstance(iat, int | float):
        raise ReceiptError("claim 'iat' must be a NumericDate")
    status = claims["status"]
    if status not in ("received", "rejected"):
        raise ReceiptError("claim 'status' must be received or rejected")
    reason = claims.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > _MAX_TEXT):
        raise ReceiptError("claim 'reason' must be a short string")
    try:
        issued_at = datetime.fromtimestamp(iat, UTC)
    except (OverflowError, OSError, ValueError):
        raise ReceiptError("claim 'iat' is out of range") from None
    return VerifiedReceipt(claims["jti"], status, reason, issued_at, kid)
