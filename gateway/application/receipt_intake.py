"""Take a partner's receipt: verify it against what we sent, record it once, move the status."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import structlog
from joserfc import jws
from joserfc.errors import JoseError

from gateway.application.submit import PolicyView
from gateway.audit_entry import Actor, ActorKind
from gateway.errors import NotFoundError
from gateway.metrics import Metrics
from gateway.receipts import ReceiptError, VerifiedReceipt, verify_receipt
from gateway.store.disclosure_model import Disclosure, Status
from gateway.store.receipt_rows import StoredReceipt
from gateway.store.status_moves import Move

log = structlog.get_logger("gateway.receipts")

RECEIPT_MISMATCH = "receipt_mismatch"
"""A synchronous receipt that is not for the envelope just sent (another message, other bytes)."""
_NOT_THIS_ENVELOPE = frozenset({"receipt_wrong_message", "receipt_digest_mismatch"})


def claimed_message_id(token: bytes) -> str:
    """The message id a receipt claims to be for (unverified: only to find what to check)."""
    try:
        payload = json.loads(jws.extract_compact(token).payload)
    except (JoseError, ValueError, TypeError, UnicodeDecodeError):
        raise ReceiptError("receipt is not a compact JWS", code="receipt_malformed") from None
    message_id = payload.get("message_id") if isinstance(payload, dict) else None
    if not isinstance(message_id, str) or not message_id:
        raise ReceiptError("receipt has no message_id", code="receipt_malformed")
    return message_id


@dataclass(frozen=True, slots=True)
class ReceiptRecorded:
    """A verified receipt, recorded (or recognised as one recorded before)."""

    receipt_id: str
    message_id: str
    status: Status
    duplicate: bool


class ReceiptRecords(Protocol):
    """What taking a receipt reads and writes (the store's ReceiptLedger; fakes in unit tests)."""

    async def disclosure(self, message_id: str) -> Disclosure | None: ...

    async def record(
        self, receipt: StoredReceipt, move: Move, seen: Status
    ) -> tuple[bool, Status]: ...

    async def refused(
        self, *, message_id: str, partner: str | None, code: str, via: str, at: datetime
    ) -> None: ...


class PartnerKeys(Protocol):
    """The policy in force, for the partners' registered keys."""

    @property
    def snapshot(self) -> PolicyView: ...


class ReceiptIntake:
    """One way in for receipts, whichever channel brought them (webhook reply, POST, MESH)."""

    def __init__(
        self,
        *,
        records: ReceiptRecords,
        policy: PartnerKeys,
        org_id: str,
        metrics: Metrics,
        clock: Callable[[], datetime],
    ) -> None:
        self._records, self._policy, self._org_id = records, policy, org_id
        self._metrics, self._clock = metrics, clock
        self._refusal_log = RateLimitedLog(log)

    async def accept(
        self, token: bytes, *, via: str = "api", known: Disclosure | None = None
    ) -> ReceiptRecorded:
        """Verify and record a receipt; a replayed receipt id changes nothing.

        `known` is the disclosure the caller already read, so it is not read again; it is used
        only if the receipt names that same disclosure.
        """
        now = self._clock()
        message_id = claimed_message_id(token)
        disclosure = known if known is not None and known.id == message_id else None
        if disclosure is None:
            disclosure = await self._records.disclosure(message_id)
        if disclosure is None or disclosure.digest is None:
            self._unauthenticated("receipt_unknown_message", via)
            raise NotFoundError("no disclosure with that message id")
        try:
            verified = self._verify(token, disclosure, disclosure.digest, now)
        except ReceiptError as exc:
            if not exc.signed:
                self._unauthenticated(exc.code, via)
                raise
            await self._refused(disclosure, exc.code, via)
            raise
        return await self._record(token, verified, disclosure, via, now)

    async def accept_sync(
        self, token: bytes, *, sent: Disclosure, digest: str, via: str
    ) -> ReceiptRecorded:
        """Verify and record the receipt a partner answered a delivery with.

        It must be for the envelope just sent (`sent`, whose bytes have `digest`): a receipt for
        another message or other bytes, even one validly signed, is `receipt_mismatch`.
        """
        now = self._clock()
        claimed_message_id(token)
        try:
            verified = self._verify(token, sent, digest, now)
        except ReceiptError as exc:
            code = RECEIPT_MISMATCH if exc.code in _NOT_THIS_ENVELOPE else exc.code
            if exc.signed:
                await self._refused(sent, code, via)
            else:
                self._unauthenticated(code, via)
            if code == RECEIPT_MISMATCH:
                raise ReceiptError(
                    "the receipt is not for the envelope just sent", code=code
                ) from None
            raise
        return await self._record(token, verified, sent, via, now)

    def _verify(
        self, token: bytes, disclosure: Disclosure, digest: str, now: datetime
    ) -> VerifiedReceipt:
        return verify_receipt(
            token,
            partner_keys=self._policy.snapshot.keys.get(disclosure.partner_id, ()),
            partner_id=disclosure.partner_id,
            council_id=self._org_id,
            message_id=disclosure.id,
            expected_digest=digest,
            now=now,
        )

    async def _record(
        self,
        token: bytes,
        verified: VerifiedReceipt,
        disclosure: Disclosure,
        via: str,
        now: datetime,
    ) -> ReceiptRecorded:
        target = Status.RECEIPTED if verified.status == "received" else Status.FAILED
        # Accepted all the same: the partner holds the data either way, and the record says so.
        late = disclosure.expires_at is not None and now > disclosure.expires_at
        actor = Actor(ActorKind.PARTNER, disclosure.partner_id)
        stored = StoredReceipt(
            receipt_id=verified.receipt_id,
            disclosure_id=disclosure.id,
            status=verified.status,
            reason=verified.reason,
            token=token.decode("ascii"),
            received_at=now,
            verified_kid=verified.kid,
            partner_id=disclosure.partner_id,
            late=late,
        )
        detail: dict[str, str] = {"receipt_id": verified.receipt_id, "via": via}
        if verified.reason:
            detail["reason"] = "receipt_rejected"
        if late:
            detail["late"] = "envelope_expired"
        move = Move(
            disclosure.id,
            target,
            event_type="receipted" if target is Status.RECEIPTED else "receipt_rejected",
            actor=actor,
            at=now,
            detail=detail,
        )
        fresh, status = await self._records.record(stored, move, disclosure.status)
        self._metrics.receipts.labels("replayed" if not fresh else verified.status).inc()
        if fresh and status is Status.RECEIPTED:
            self._metrics.delivery_seconds.observe((now - disclosure.created_at).total_seconds())
        log.info(
            "receipt",
            disclosure_id=disclosure.id,
            status=str(status),
            receipt_id=verified.receipt_id,
            late=late,
        )
        return ReceiptRecorded(verified.receipt_id, disclosure.id, status, duplicate=not fresh)

    def _unauthenticated(self, code: str, via: str) -> None:
        """Anyone could have sent it: counted and logged (at a limited rate), never stored."""
        self._metrics.receipts.labels("refused").inc()
        self._metrics.receipts_unauthenticated.labels(code).inc()
        self._refusal_log.warning("receipt_refused_unauthenticated", code=code, via=via)

    async def _refused(self, disclosure: Disclosure, code: str, via: str) -> None:
        """Signed by the partner's registered key and still refused: audited."""
        self._metrics.receipts.labels("refused").inc()
        log.warning("receipt_refused", code=code, partner=disclosure.partner_id)
        await self._records.refused(
            message_id=disclosure.id,
            partner=disclosure.partner_id,
            code=code,
            via=via,
            at=self._clock(),
        )


class RateLimitedLog:
    """At most one line per `interval` seconds per event; the next line says how many were
    left out, so a flood of junk cannot flood the log."""

    def __init__(self, logger: Any, *, interval: float = 10.0) -> None:
        self._log, self._interval = logger, interval
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def warning(self, event: str, **fields: Any) -> None:
        """Log now, or count it for the next line."""
        now = time.monotonic()
        if now - self._last.get(event, -self._interval) < self._interval:
            self._skipped[event] = self._skipped.get(event, 0) + 1
            return
        self._last[event] = now
        self._log.warning(event, suppressed=self._skipped.pop(event, 0), **fields)
