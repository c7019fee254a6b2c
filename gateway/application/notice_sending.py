"""Send Article 19 notices: each recipient of the person's data gets a sealed notice.

Plans the notices (`recipient_notices.plan_notices`), then for each partner seals a notice
envelope to its encryption key (for an email partner: signs it and holds it at rest, to go
readable over TLS or as S/MIME, as an email disclosure does) and records it for delivery
through the outbox, exactly as a disclosure leaves, so it is retried, dead-lettered and
receipted the same way. The notice goes even where the agreement has since ended: the duty to
notify outlives it. Corrected values go only in the sealed notice, only for paths that partner
received, and through the transform the partner's agreement applied to that path (a year for
`year_only`, a pseudonym for `pseudonymise`), so a notice never tells a partner more than the
disclosure did.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from agreements.model import Agreement
from agreements.transforms import REMOVE, apply
from gateway import audit
from gateway.application.admin_ports import StorePort
from gateway.application.recipient_notices import (
    NoticeKind,
    NoticePlan,
    NoticeRequest,
    PartnerNotice,
    plan_notices,
)
from gateway.application.submit import PolicyView, new_disclosure_id
from gateway.notice_envelope import NoticeClaims
from gateway.partner_keys import PartnerKey, PartnerKeyError, encryption_key_for
from gateway.protection import Protection
from gateway.sealing import SealedEnvelope, SignedDisclosure
from gateway.signed_at_rest import seal_signed
from gateway.store import notice_rows
from gateway.store.unit_of_work import Connection


class NoticeSealerPort(Protocol):
    """Signs a notice with the council key in force and encrypts it for the partner's key, or
    only signs it (for the email channel)."""

    async def seal(self, claims: NoticeClaims, recipient: PartnerKey) -> SealedEnvelope: ...

    async def sign(self, claims: NoticeClaims) -> SignedDisclosure: ...


@dataclass(frozen=True, slots=True)
class SentNotice:
    """One partner's notice: queued for delivery, or the reason code it could not be sealed."""

    notice_id: str
    partner: str
    partner_name: str
    status: str  # queued | not_sent
    not_sent: str | None
    disclosure_ids: tuple[str, ...]
    paths: tuple[str, ...]
    corrected_paths: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (ids and paths only)."""
        return {
            "notice_id": self.notice_id,
            "partner": self.partner,
            "partner_name": self.partner_name,
            "status": self.status,
            "not_sent": self.not_sent,
            "disclosure_ids": list(self.disclosure_ids),
            "paths": list(self.paths),
            "corrected_paths": list(self.corrected_paths),
        }


@dataclass(frozen=True, slots=True)
class NoticeRun:
    """What one `subject notify` did: a notice per affected partner."""

    request_id: str
    kind: NoticeKind
    notices: tuple[SentNotice, ...]
    not_affected: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (ids and paths only)."""
        return {
            "request_id": self.request_id,
            "kind": str(self.kind),
            "notices": [n.as_dict() for n in self.notices],
            "not_affected": list(self.not_affected),
        }


def corrected_values(
    notice: PartnerNotice,
    corrections: Mapping[str, Any],
    agreements: Mapping[str, Agreement],
    *,
    pseudonym_key: bytes,
    today: datetime,
) -> dict[str, Any]:
    """The corrected values this partner may be told, each through the transform it was sent
    with; a path whose agreement or rule is gone, or whose value the transform removes, goes
    with its path only."""
    values: dict[str, Any] = {}
    for path in notice.corrected_paths:
        agreement_id, purpose = notice.sent_under.get(path, ("", ""))
        agreement = agreements.get(agreement_id)
        transform = agreement.rules_for(purpose).get(path) if agreement else None
        if agreement is None or transform is None:
            continue
        value = corrections[path]

        def one(item: Any, transform: Any = transform, scope: str = agreement.id) -> Any:
            return apply(transform, item, key=pseudonym_key, scope=scope, today=today.date())

        if isinstance(value, list) and "[*]" in path:
            sent = [result for item in value if (result := one(item)) is not REMOVE]
            if sent or not value:
                values[path] = sent
        elif (result := one(value)) is not REMOVE:
            values[path] = result
    return values


class SendNotices:
    """The Article 19 notice use case (`gateway-admin subject notify`)."""

    def __init__(
        self,
        *,
        org_id: str,
        store: StorePort,
        policy: Callable[[], PolicyView],
        sealer: NoticeSealerPort,
        protection: Protection,
        clock: Callable[[], datetime],
        envelope_lifetime: timedelta,
        records_retention: timedelta,
        new_id: Callable[[], str] = new_disclosure_id,
    ) -> None:
        self._org_id, self._store, self._policy = org_id, store, policy
        self._sealer, self._protection, self._clock = sealer, protection, clock
        self._lifetime, self._new_id = envelope_lifetime, new_id
        # The proof that a partner was told is kept like the council's other records, and
        # for as long as the record of what it corrects.
        self._records_retention = records_retention

    async def plan(self, request: NoticeRequest) -> NoticePlan:
        """Who would be told (the dry run), audited as a plan."""
        return await plan_notices(self._store, self._protection, request, at=self._clock())

    async def send(self, request: NoticeRequest) -> NoticeRun:
        """Plan, seal and queue a notice for every affected partner; each one audited."""
        plan = await self.plan(request)
        kind, reason, actor = request.kind, request.reason, request.actor
        now = self._clock()
        request_id = self._new_id()
        nhs_index = self._protection.blind_index("nhs_number", request.nhs_number)
        snapshot = self._policy()
        sent = []
        for notice in plan.notices:
            notice_id = self._new_id()
            record = notice_rows.NoticeRecord(
                id=notice_id,
                request_id=request_id,
                subject_nhs_index=nhs_index,
                kind=str(kind),
                partner_id=notice.partner,
                disclosure_ids=notice.disclosure_ids,
                paths=notice.paths,
                corrected_paths=(),
                reason=self._protection.seal_text(reason, notice_id),
                requested_by=actor.name,
                created_at=now,
                retain_until=max(now + self._records_retention, notice.kept_until or now),
            )
            values = corrected_values(
                notice,
                request.corrections,
                snapshot.agreements,
                pseudonym_key=self._protection.pseudonym_key,
                today=now,
            )
            record = replace(record, corrected_paths=tuple(values))
            claims = NoticeClaims(
                iss=self._org_id,
                aud=notice.partner,
                jti=notice_id,
                iat=now,
                kind=str(kind),
                reason=reason,
                disclosures=notice.disclosure_ids,
                fields=notice.paths,
                corrections=values,
                exp=now + self._lifetime,
            )
            try:
                sealed = await self._sealed(claims, snapshot, notice_id)
            except PartnerKeyError as exc:
                await self._write_not_sent(record, exc.code, actor)
                sent.append(_sent(record, notice, exc.code))
                continue
            delivery = notice_rows.NoticeDelivery(
                envelope=sealed.body,
                digest=sealed.digest,
                key_ids=(sealed.signing_kid, sealed.encryption_kid),
                agreement_id=notice.latest[0],
                agreement_version=notice.latest[1],
                expires_at=now + self._lifetime,
            )
            await self._write_sealed(record, delivery, actor)
            sent.append(_sent(record, notice, None))
        return NoticeRun(request_id, kind, tuple(sent), plan.not_affected)

    async def _sealed(
        self, claims: NoticeClaims, snapshot: PolicyView, notice_id: str
    ) -> SealedEnvelope:
        """Sealed to the partner's encryption key; for an email partner, signed and held at
        rest under the data key (it needs no JWK: the message is TLS or S/MIME)."""
        partner = snapshot.partners.get(claims.aud)
        if partner is not None and str(partner.channel.type) == "email":
            signed = await self._sealer.sign(claims)
            return seal_signed(signed, self._protection, notice_id)
        key = encryption_key_for(snapshot.keys.get(claims.aud, ()), claims.aud, claims.iat)
        return await self._sealer.seal(claims, key)

    async def _write_sealed(
        self,
        record: notice_rows.NoticeRecord,
        delivery: notice_rows.NoticeDelivery,
        actor: audit.Actor,
    ) -> None:
        async def work(conn: Connection) -> None:
            await notice_rows.record_sealed(conn, record, delivery, actor=actor)

        await self._store.write(work)

    async def _write_not_sent(
        self, record: notice_rows.NoticeRecord, code: str, actor: audit.Actor
    ) -> None:
        async def work(conn: Connection) -> None:
            await notice_rows.record_not_sent(conn, record, code, actor=actor)

        await self._store.write(work)

    async def about(self, nhs_number: str) -> Sequence[notice_rows.NoticeStatus]:
        """Every notice recorded about the person, with where its delivery is now."""
        nhs_index = self._protection.blind_index("nhs_number", nhs_number)

        async with self._store.read() as conn:
            return await notice_rows.notices_about(conn, nhs_index)


def _sent(record: notice_rows.NoticeRecord, notice: PartnerNotice, code: str | None) -> SentNotice:
    return SentNotice(
        notice_id=record.id,
        partner=notice.partner,
        partner_name=notice.partner_name,
        status="not_sent" if code else "queued",
        not_sent=code,
        disclosure_ids=record.disclosure_ids,
        paths=record.paths,
        corrected_paths=record.corrected_paths,
    )
