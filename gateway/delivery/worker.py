"""One delivery attempt of one envelope, the same whichever queue brought it.

Looks up the disclosure, its agreement and partner; refuses or holds per the agreement's status
(suspended holds, terminated or expired fails); calls the partner's channel; records the outcome.
What happens next to the message (ack, retry in a delay tier, dead letter, reschedule an outbox
row) is the queue's business: the worker answers with a `Verdict` and offers the writes the
queue asks for (`give_up`, `note_retry`, `hold`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from agreements.model import channel_target, notice_target
from gateway import audit
from gateway.application.channel import (
    SMIME_CMS,
    Channel,
    DeliveryOutcome,
    DeliveryResult,
    Envelope,
    SealsAtSend,
)
from gateway.application.receipt_intake import RECEIPT_MISMATCH, ReceiptIntake
from gateway.delivery import retries
from gateway.jose import b64url_digest
from gateway.metrics import Metrics
from gateway.partner_certs import certificate_for
from gateway.partner_keys import sealed_key_refusal
from gateway.policy_cache import PolicyCache
from gateway.protection import AtRestDecryptError, Protection
from gateway.queue.retry import RetryPolicy
from gateway.receipts import ReceiptError
from gateway.signed_at_rest import held_at_rest, open_held
from gateway.store import delivery_records, disclosures, smime_seals, status_moves
from gateway.store.database import Store
from gateway.store.disclosure_model import NOTICE, Disclosure, Status
from gateway.store.group_commit import SetWise
from gateway.store.unit_of_work import Connection

log = structlog.get_logger("gateway.delivery")

ATTEMPTS_EXHAUSTED = "delivery_attempts_exhausted"
CHANNEL_CHANGED = "partner_channel_changed"  # signed for email, the partner now on another
HANDLER_ERROR = "handler_error"  # an attempt raised (a poison reply, the database away)
SEAL_NOT_KEPT = "smime_seal_not_kept"  # the disclosure left `queued` while its CMS was made
HOLD_STATUSES = {"suspended": "agreement_suspended", "draft": "agreement_not_active"}
FAIL_STATUSES = {"terminated": "agreement_terminated", "expired": "agreement_expired"}
_DETAIL_TYPES = (str, int, bool)


@dataclass(frozen=True, slots=True)
class Finished:
    """Nothing more to do with this envelope: receipted, dispatched, or already settled."""

    outcome: str


@dataclass(frozen=True, slots=True)
class Transient:
    """Try again later (`retry_after`: the partner's own wish, in seconds)."""

    reason: str
    retry_after: float | None = None
    agreement_id: str | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    """Recorded `failed` with this reason; the queue dead-letters the envelope."""

    reason: str


@dataclass(frozen=True, slots=True)
class OnHold:
    """Not sent: the agreement is suspended; look again later without spending an attempt."""

    reason: str


Verdict = Finished | Transient | Failed | OnHold


def _safe_detail(detail: Mapping[str, Any]) -> dict[str, Any]:
    """Channel detail is codes and numbers; keep only scalars fit for events and audit."""
    return {
        k: v
        for k, v in detail.items()
        if isinstance(v, _DETAIL_TYPES) and not (isinstance(v, str) and len(v) > 200)
    }


def _as_sent(envelope: Envelope, seal: smime_seals.Seal) -> tuple[Envelope, str]:
    sealed = replace(
        envelope, body=seal.cms, digest=b64url_digest(seal.cms), content_type=SMIME_CMS
    )
    return sealed, seal.cert


class DeliveryWorker:
    """Delivers envelopes through the partners' channels and records what happened."""

    def __init__(
        self,
        *,
        store: Store,
        policy: PolicyCache,
        intake: ReceiptIntake,
        channels: Mapping[str, Channel],
        metrics: Metrics,
        clock: Callable[[], datetime],
        default_retry: RetryPolicy,
        protection: Protection,
        partner_concurrency: int = 16,
    ) -> None:
        self.store, self.policy, self.intake = store, policy, intake
        self.protection = protection  # opens email partners' signed JWTs, at send time only
        self.channels, self.metrics, self.clock = channels, metrics, clock
        self.default_retry = default_retry
        # A partner sees at most this many of this process's requests at once; the queues make
        # it hold across processes (a single active consumer, leases counted per partner).
        self._partner_concurrency = partner_concurrency
        self._partner_slots: dict[str, asyncio.Semaphore] = {}

    def retry_policy(self, agreement_id: str | None) -> RetryPolicy:
        """The policy for envelopes under this agreement (its own, else the default)."""
        agreement = self.policy.snapshot.agreements.get(agreement_id or "")
        return retries.for_agreement(agreement, self.default_retry)

    async def disclosure(self, message_id: str) -> Disclosure | None:
        """The stored disclosure an envelope belongs to (read with those asked for meanwhile)."""
        return await self.store.read_together(SetWise(disclosures.get_many, message_id))

    async def attempt(self, envelope: Envelope, *, known: Disclosure | None = None) -> Verdict:
        """Try to deliver once; partner faults come back as a verdict, never an exception.

        `known` is the stored disclosure when the caller has just read it (the embedded queue
        reads it with the claim); otherwise it is read here.
        """
        found = known or await self.disclosure(envelope.message_id)
        if found is None:
            log.warning("delivery_unknown_disclosure", disclosure_id=envelope.message_id)
            return Finished("unknown")
        if found.status is not Status.QUEUED:
            # Receipted, failed or already dispatched: a duplicate after a crash or a replay race.
            log.info("delivery_already_settled", disclosure_id=found.id, status=str(found.status))
            return Finished(str(found.status))
        bound = log.bind(
            disclosure_id=found.id,
            partner=found.partner_id,
            agreement=found.agreement_id,
            attempt=envelope.attempt,
        )
        snapshot = self.policy.snapshot
        agreement = snapshot.agreements.get(found.agreement_id)
        partner = snapshot.partners.get(found.partner_id)
        # An Article 19 notice goes whatever became of the agreement: the duty outlives it.
        notice = found.record_kind == NOTICE
        if partner is None or (agreement is None and not notice):
            bound.warning("delivery_policy_unknown")
            reason = "partner_unknown" if partner is None else "agreement_unknown"
            return Transient(reason, agreement_id=found.agreement_id)
        status = "active" if notice or agreement is None else str(agreement.status)
        if status in HOLD_STATUSES:
            return OnHold(HOLD_STATUSES[status])
        if status in FAIL_STATUSES:
            await self.fail(envelope, FAIL_STATUSES[status])
            return Failed(FAIL_STATUSES[status])
        keys = snapshot.keys.get(found.partner_id, ())
        refusal = sealed_key_refusal(keys, found.partner_id, found.key_ids, self.clock())
        if refusal is not None:  # sealed to a revoked key, or a retired one past its date
            bound.warning("delivery_key_refused", reason=refusal)
            await self.fail(envelope, refusal)
            return Failed(refusal)
        channel_type = str(partner.channel.type)
        channel = self.channels.get(channel_type)
        if channel is None:
            bound.error("delivery_channel_not_configured", channel=channel_type)
            return Transient("channel_not_configured", agreement_id=found.agreement_id)
        if notice:
            target = dict(notice_target(partner, agreement))
        else:
            assert agreement is not None  # refused above
            target = dict(channel_target(partner, agreement))
        if held_at_rest(found.key_ids):
            if channel_type != "email":  # the partner moved channel: the JWT is not for it
                bound.error("delivery_channel_changed", channel=channel_type)
                self.metrics.channel_results.labels(
                    channel_type, "permanent", CHANNEL_CHANGED
                ).inc()
                await self.fail(envelope, CHANNEL_CHANGED)
                return Failed(CHANNEL_CHANGED)
            opened = await self._open_signed(envelope, found, target, bound)
            if not isinstance(opened, Envelope):  # not sent: counted like a channel's refusal
                outcome = "transient" if isinstance(opened, Transient) else "permanent"
                reason = opened.reason if isinstance(opened, Transient | Failed) else ""
                self.metrics.channel_results.labels(channel_type, outcome, reason).inc()
                return opened
            envelope = opened
        envelope, result = await self._send(channel, envelope, target)
        self.metrics.deliveries.labels(found.partner_id, str(result.outcome)).inc()
        self.metrics.channel_results.labels(
            channel_type, str(result.outcome), result.reason or ""
        ).inc()
        return await self._record(envelope, found, channel_type, result, bound)

    async def _open_signed(
        self, envelope: Envelope, found: Disclosure, target: dict[str, Any], bound: Any
    ) -> Envelope | Verdict:
        """An email partner's signed JWT, opened from the data key, and the certificate to
        envelope it to when the partner holds one (adds `smime_certificate` to `target`)."""
        certs = self.policy.snapshot.certs.get(found.partner_id, ())
        cert, refusal = certificate_for(certs, self.clock())
        if refusal is not None:  # revoked or expired: never the TLS-only baseline instead
            bound.warning("delivery_cert_refused", reason=refusal)
            return Transient(refusal, agreement_id=found.agreement_id)
        if cert is not None:
            target.update(smime_certificate=cert.pem, smime_fingerprint=cert.fingerprint)
        try:
            return open_held(envelope, self.protection)
        except AtRestDecryptError as exc:  # altered, or another data key: it can never go
            bound.error("delivery_envelope_unopenable", reason=exc.code)
            await self.fail(envelope, exc.code)
            return Failed(exc.code)

    async def _send(
        self, channel: Channel, envelope: Envelope, target: Mapping[str, Any]
    ) -> tuple[Envelope, DeliveryResult]:
        """Seal for the partner first where the channel seals at send time, then deliver."""
        if "smime_certificate" in target and isinstance(channel, SealsAtSend):
            sealed = await self._sealed_once(channel, envelope, target)
            if isinstance(sealed, DeliveryResult):  # counted and recorded like a send's
                return envelope, sealed
            if sealed is not None:
                envelope, fingerprint = sealed
                target = {**target, "smime_fingerprint": fingerprint}
        return envelope, await self._deliver(channel, envelope, target)

    async def _sealed_once(
        self, channel: SealsAtSend, envelope: Envelope, target: Mapping[str, Any]
    ) -> tuple[Envelope, str] | DeliveryResult | None:
        """The partner's S/MIME message and the certificate it is for: the one kept while that
        certificate and the council's signing certificate are still the ones to use, or one
        made now for `target`'s and kept (its digest made the one a receipt must carry) before
        it is first sent. So a retry, a resend, or a duplicate after a lost answer carries the
        same bytes and digest; two attempts racing to make one both send the one kept first."""
        async with self.store.read() as conn:
            kept = await smime_seals.kept(conn, envelope.message_id)
        now = self.clock()
        signer = channel.signer(now)
        if kept is not None and self._still_usable(kept, envelope.partner_id, signer):
            return _as_sent(envelope, kept)
        made = await channel.seal_for_partner(envelope, target, now)
        if not isinstance(made, Envelope):
            return made
        mine = smime_seals.Seal(str(target.get("smime_fingerprint", "")), signer, made.body)
        stale = kept.cms if kept is not None else None

        async def work(conn: Connection) -> smime_seals.Seal | None:
            if await smime_seals.keep(
                conn, made.message_id, mine, replacing=stale, digest=made.digest, at=now
            ):
                return mine
            return await smime_seals.kept(conn, made.message_id)

        won = await self.store.write(work)
        if won is None or won.cms == stale:  # the disclosure moved on meanwhile, or was purged
            return DeliveryResult(DeliveryOutcome.TRANSIENT, reason=SEAL_NOT_KEPT)
        return _as_sent(envelope, won)

    def _still_usable(self, kept: smime_seals.Seal, partner_id: str, signer: str | None) -> bool:
        now = self.clock()
        certs = self.policy.snapshot.certs.get(partner_id, ())
        partner_ok = any(c.fingerprint == kept.cert and c.usable_at(now) for c in certs)
        return partner_ok and signer is not None and kept.signer == signer

    async def _deliver(
        self, channel: Channel, envelope: Envelope, target: Mapping[str, Any]
    ) -> DeliveryResult:
        slots = self._partner_slots.get(envelope.partner_id)
        if slots is None:
            slots = self._partner_slots[envelope.partner_id] = asyncio.Semaphore(
                self._partner_concurrency
            )
        async with slots:
            return await self._call(channel, envelope, target)

    async def _call(
        self, channel: Channel, envelope: Envelope, target: Mapping[str, Any]
    ) -> DeliveryResult:
        started = time.perf_counter()
        try:
            return await channel.deliver(envelope, target)
        except Exception as exc:  # a channel must not raise; if one does, retry, never crash
            log.error(
                "channel_raised", disclosure_id=envelope.message_id, error_type=type(exc).__name__
            )
            return DeliveryResult(DeliveryOutcome.TRANSIENT, reason="channel_error")
        finally:
            self.metrics.stage_seconds.labels("deliver").observe(time.perf_counter() - started)

    async def _record(
        self,
        envelope: Envelope,
        found: Disclosure,
        channel: str,
        result: DeliveryResult,
        bound: Any,
    ) -> Verdict:
        if result.outcome is DeliveryOutcome.RECEIPTED and result.receipt:
            try:
                accepted = await self.intake.accept_sync(
                    result.receipt, sent=found, digest=envelope.digest, via=channel
                )
            except ReceiptError as exc:
                if exc.code == RECEIPT_MISMATCH:  # audited by the intake; send it again
                    bound.warning("sync_receipt_mismatch")
                    return Transient(RECEIPT_MISMATCH, agreement_id=found.agreement_id)
                # Refused (and audited by the intake): delivered, but proof is still owed.
                bound.warning("sync_receipt_refused", code=exc.code)
                await self.dispatched(envelope, channel, {"receipt_refused": exc.code})
                return Finished("dispatched")
            return Finished(str(accepted.status))
        if result.outcome in (DeliveryOutcome.DISPATCHED, DeliveryOutcome.RECEIPTED):
            await self.dispatched(envelope, channel, _safe_detail(result.detail))
            return Finished("dispatched")
        reason = result.reason or "channel_error"
        if result.outcome is DeliveryOutcome.TRANSIENT:
            bound.info("delivery_transient", reason=reason)
            return Transient(reason, result.retry_after, found.agreement_id)
        bound.warning("delivery_permanent", reason=reason)
        await self.fail(envelope, reason)
        return Failed(reason)

    async def dispatched(self, envelope: Envelope, channel: str, detail: Mapping[str, Any]) -> None:
        """queued -> dispatched: handed over, a receipt may come later.

        A channel that made the bytes at send time (S/MIME) reports their `digest`: the one a
        receipt must then carry.
        """
        changes: dict[str, Any] = {"attempts": envelope.attempt, "next_attempt_at": None}
        if isinstance(detail.get("digest"), str):
            changes["digest"] = detail["digest"]
        move = status_moves.Move(
            envelope.message_id,
            Status.DISPATCHED,
            "dispatched",
            audit.SYSTEM,
            self.clock(),
            detail={"attempt": envelope.attempt, "channel": channel, **detail},
            changes=changes,
            record_if_refused=True,  # a receipt may overtake the hand-over; it still happened
        )
        # Deliveries finishing together share one commit, written set-wise.
        await self.store.write(SetWise(status_moves.apply, move))

    async def fail(self, envelope: Envelope, reason: str, last_reason: str | None = None) -> None:
        """Record `failed` with the reason and dead-letter the envelope in the outbox."""
        now = self.clock()

        async def work(conn: Connection) -> None:
            await delivery_records.fail(
                conn,
                envelope.message_id,
                reason=reason,
                at=now,
                attempts=envelope.attempt,
                last_reason=last_reason,
            )

        await self.store.write(work)

    async def give_up(self, envelope: Envelope, last_reason: str) -> None:
        """The attempts ran out: `failed` with `delivery_attempts_exhausted`."""
        log.warning(
            "delivery_attempts_exhausted",
            disclosure_id=envelope.message_id,
            partner=envelope.partner_id,
            attempts=envelope.attempt,
            reason=last_reason,
        )
        await self.fail(envelope, ATTEMPTS_EXHAUSTED, last_reason)

    async def note_retry(self, envelope: Envelope, reason: str, delay: timedelta) -> None:
        """A failed attempt that will be tried again after `delay` (an event, not a move)."""
        now = self.clock()

        async def work(conn: Connection) -> None:
            if (
                await delivery_records.current_status(conn, envelope.message_id)
                is not Status.QUEUED
            ):
                return
            await delivery_records.add_event(
                conn,
                envelope.message_id,
                "delivery_retry",
                at=now,
                detail={
                    "attempt": envelope.attempt,
                    "reason": reason,
                    "retry_in_ms": int(delay / timedelta(milliseconds=1)),
                },
                changes={"attempts": envelope.attempt, "next_attempt_at": now + delay},
            )

        await self.store.write(work)

    async def hold(
        self, envelope: Envelope, reason: str, delay: timedelta, *, refund: bool = False
    ) -> None:
        """Keep a queued envelope back (agreement suspended) and look again after `delay`."""
        now = self.clock()

        async def work(conn: Connection) -> None:
            if await delivery_records.last_event_type(conn, envelope.message_id) != "delivery_held":
                await delivery_records.add_event(
                    conn, envelope.message_id, "delivery_held", at=now, detail={"reason": reason}
                )
            await delivery_records.reschedule(conn, envelope.message_id, available_at=now + delay)
            if refund:
                await delivery_records.refund_attempt(conn, envelope.message_id)

        await self.store.write(work)
