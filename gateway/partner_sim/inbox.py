"""Open what arrives as a partner would: decrypt with our key, verify the council's signature.

The outcome is a verdict, never an exception: `received`, or `rejected` with the coarse reason
a receipt carries (`envelope_invalid`, `signature_invalid`) and the exact failing check for
the ledger. A signature by a kid we lack triggers one JWKS refetch (the council rotated).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway import jose
from gateway.notice_envelope import open_notice
from gateway.partner_sim.council_jwks import CouncilJwks
from gateway.partner_sim.key_pairs import PartnerKeyPair
from gateway.partner_sim.ledger import GivenReceipt, field_paths
from gateway.receipts import ReceiptStatus, make_receipt
from gateway.sealing import EnvelopeError, open_envelope, verify_disclosure

ENVELOPE_INVALID = "envelope_invalid"
SIGNATURE_INVALID = "signature_invalid"
SIMULATED_REJECTION = "simulated_rejection"
# Checks that mean "the council's signature is not good"; every other failure is the envelope.
_SIGNATURE_CHECKS = frozenset({"envelope_bad_signature", "envelope_unknown_key"})
_MAX_MESSAGE_ID = 200


@dataclass(frozen=True, slots=True)
class Verdict:
    """What opening one envelope showed; claims facts are names and ids, never values."""

    message_id: str | None
    status: ReceiptStatus
    reason: str | None = None
    check: str | None = None
    issuer: str | None = None
    agreement: Mapping[str, Any] | None = None
    purpose: str | None = None
    subject_fields: list[str] = field(default_factory=list)
    data_fields: list[str] = field(default_factory=list)


def reason_for(check: str) -> str:
    """The receipt reason for a failed check: signature_invalid or envelope_invalid."""
    return SIGNATURE_INVALID if check in _SIGNATURE_CHECKS else ENVELOPE_INVALID


def message_id_hint(value: str | None) -> str | None:
    """The X-Gatehouse-Message-Id header, if sane: names a message we cannot open."""
    if value is None or not 0 < len(value) <= _MAX_MESSAGE_ID or not value.isprintable():
        return None
    return value


class Inbox:
    """Opens envelopes for one partner and signs its receipts."""

    def __init__(
        self,
        *,
        partner_id: str,
        council_id: str,
        keys: PartnerKeyPair,
        jwks: CouncilJwks,
        clock: Callable[[], datetime],
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self._partner_id = partner_id
        self._council_id = council_id
        self._keys = keys
        self._decryption_key = jose.import_private_jwk(keys.encryption)  # RSA imports are slow
        self._jwks = jwks
        self._clock = clock
        self._new_id = new_id

    async def open(self, body: bytes, hint: str | None) -> Verdict:
        """Decrypt and verify; on an unknown council kid, refetch the JWKS once and retry."""
        jwks = await self._jwks.current()
        try:
            return self._open(body, jwks)
        except EnvelopeError as exc:
            if exc.code != "envelope_unknown_key":
                return _refused(exc.code, hint)
            newer = await self._jwks.refetch(jwks)
            if newer is None:
                return _refused(exc.code, hint)
        try:
            return self._open(body, newer)
        except EnvelopeError as exc:
            return _refused(exc.code, hint)

    def _open(self, body: bytes, jwks: Mapping[str, Any]) -> Verdict:
        if body.count(b".") == 2:  # a signed JWT without a JWE: the email baseline
            return self._disclosure(
                verify_disclosure(
                    body,
                    council_jwks=jwks,
                    expected_audience=self._partner_id,
                    expected_issuer=self._council_id,
                    now=self._clock(),
                )
            )
        try:
            claims = open_envelope(
                body,
                decryption_key=self._decryption_key,
                council_jwks=jwks,
                expected_audience=self._partner_id,
                expected_issuer=self._council_id,
                now=self._clock(),
            )
        except EnvelopeError as exc:
            if exc.code != "envelope_not_a_disclosure":
                raise
            return self._open_notice(body, jwks)
        return self._disclosure(claims)

    @staticmethod
    def _disclosure(claims: Mapping[str, Any]) -> Verdict:
        return Verdict(
            message_id=claims["jti"],
            status="received",
            issuer=claims["iss"],
            agreement={"id": claims["agreement"]["id"], "version": claims["agreement"]["version"]},
            purpose=claims["purpose"],
            subject_fields=sorted(str(name) for name in claims["subject"]),
            data_fields=field_paths(claims["data"]),
        )

    def _open_notice(self, body: bytes, jwks: Mapping[str, Any]) -> Verdict:
        """An Article 19 notice: opened, checked and receipted like a disclosure."""
        notice = open_notice(
            body,
            decryption_key=self._decryption_key,
            council_jwks=jwks,
            expected_audience=self._partner_id,
            expected_issuer=self._council_id,
            now=self._clock(),
        )
        return Verdict(
            message_id=notice.jti,
            status="received",
            issuer=notice.iss,
            purpose=f"art19_{notice.kind}",
            data_fields=sorted(notice.fields),
        )

    def receipt(
        self, message_id: str, body: bytes, status: ReceiptStatus, reason: str | None
    ) -> GivenReceipt:
        """Sign a receipt over the digest of these exact bytes."""
        receipt_id = self._new_id()
        token = make_receipt(
            partner_id=self._partner_id,
            council_id=self._council_id,
            message_id=message_id,
            body_received=body,
            status=status,
            reason=reason,
            signing_key=self._keys.signing,
            now=self._clock(),
            receipt_id=receipt_id,
        )
        return GivenReceipt(receipt_id, status, reason, token)


def _refused(check: str, hint: str | None) -> Verdict:
    return Verdict(message_id=hint, status="rejected", reason=reason_for(check), check=check)
