"""Submit a disclosure: authorise, decide, (hold,) minimise, seal, record in one unit of work.

Everything here runs in memory except the one write at the end; the plaintext record never
reaches the database (only the envelope sealed to the partner, or, for a hold, the request
sealed under the gateway's data key).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_start
from typing import Any, Protocol

import structlog
import uuid_utils

from agreements.decision import (
    Decision,
    DecisionContext,
    DisclosureRequest,
    Outcome,
    decide,
    opt_out_applies,
)
from agreements.dictionary import UNKNOWN, recordable_paths
from agreements.minimise import minimise
from agreements.model import Agreement, Partner
from agreements.vocabulary import Purpose, recipient_under_part_3
from gateway.application.commands import (
    Conflict,
    Denied,
    Held,
    Queued,
    SubmitDisclosure,
    SubmitResult,
    non_json_path,
    result_from_stored,
    result_to_stored,
)
from gateway.audit import Actor, ActorKind
from gateway.clients import Client
from gateway.errors import GatewayError
from gateway.logging import bound_context
from gateway.metrics import Metrics
from gateway.partner_keys import PartnerKey, PartnerKeyError, encryption_key_for
from gateway.protection import Protection
from gateway.sealing import EnvelopeAgreement, EnvelopeClaims, SealedEnvelope, SignedDisclosure
from gateway.signed_at_rest import seal_signed
from gateway.store.disclosure_model import NewDisclosure, SubjectIndexes
from gateway.store.disclosures import AcceptedDisclosure
from gateway.store.idempotency import IdempotencyKeyReusedError
from gateway.store.submissions import Hold, KeptReply, PolicyRefusal, Write

log = structlog.get_logger("gateway.submit")
FieldLists = tuple[tuple[str, ...], tuple[str, ...], tuple[dict[str, str], ...]]
"""(sent, removed, refused) paths of one minimised record."""


_PURPOSES = frozenset(str(p) for p in Purpose)
DEFAULT_ENVELOPE_LIFETIME = timedelta(days=30)


class SubmissionInvalidError(GatewayError):
    """The command carries a value no envelope can hold (refused before anything is stored)."""

    code = "value_not_json"


class PolicyView(Protocol):
    """The agreements, partners and partner keys in force (the policy cache's snapshot)."""

    @property
    def agreements(self) -> Mapping[str, Agreement]: ...

    @property
    def partners(self) -> Mapping[str, Partner]: ...

    @property
    def keys(self) -> Mapping[str, tuple[PartnerKey, ...]]: ...


class SubmissionRecords(Protocol):
    """What submitting reads and writes (the store implements it; unit tests fake it)."""

    async def opted_out(self, nhs_index: str) -> bool:
        """The subject is on the national data opt-out list."""
        ...

    async def prior(self, client: str, key: str, request_hash: str) -> Mapping[str, Any] | None:
        """The reply kept for an Idempotency-Key; IdempotencyKeyReusedError if the body differs."""
        ...

    async def record(self, write: Write, keep: KeptReply | None) -> Mapping[str, Any] | None:
        """Write the outcome (and the key's reply) in one unit of work.

        None when written; the reply a concurrent request kept first, when it took the key.
        """
        ...


class Sealer(Protocol):
    """Signs with the council key in force and encrypts for the partner's key."""

    async def seal(self, claims: EnvelopeClaims, recipient: PartnerKey) -> SealedEnvelope: ...

    async def sign(self, claims: EnvelopeClaims) -> SignedDisclosure:
        """Sign only, for the email channel (sealed at rest here, opened at send time)."""
        ...


def lawful_basis_summary(
    agreement: Agreement, partner: Partner | None = None, purpose: str = ""
) -> str:
    """One line for the Article 30 record: Article 6, 9, 10, Schedule 1, gateways, exemption.

    Ends with `recipient dpa18 part3` when the partner receives as a competent authority, so
    the record says its processing is under DPA 2018 Part 3, not UK GDPR.
    """
    basis = agreement.lawful_basis
    parts = [f"art6(1)({basis.article_6})"]
    if basis.article_9:
        parts.append(f"art9(2)({basis.article_9})")
    if basis.schedule_1:
        parts.append("dpa18 " + ",".join(basis.schedule_1))
    if basis.article_10:
        parts.append("art10 " + ",".join(basis.article_10))
    if basis.gateways:
        parts.append("gateways " + ",".join(basis.gateways))
    if basis.exemption:
        parts.append(f"exemption {basis.exemption}")
    if partner is not None and recipient_under_part_3(partner.kind, purpose):
        parts.append("recipient dpa18 part3")
    return "; ".join(parts)


def new_disclosure_id() -> str:
    """A UUIDv7 (RFC 9562): time-ordered, so a commit's new index entries share pages."""
    return str(uuid_utils.uuid7())


def _by_email(partner: Partner | None) -> bool:
    return partner is not None and str(partner.channel.type) == "email"


def _midnight(day: date) -> datetime:
    return datetime.combine(day, day_start(), tzinfo=UTC)


class SubmitDisclosures:
    """The submit use case; also used by the demo and benchmarks."""

    def __init__(
        self,
        *,
        org_id: str,
        records: SubmissionRecords,
        policy: Callable[[], PolicyView],
        sealer: Sealer,
        protection: Protection,
        metrics: Metrics,
        clock: Callable[[], datetime],
        deliverable_channels: frozenset[str],
        on_accepted: Callable[[], None] | None = None,
        new_id: Callable[[], str] = new_disclosure_id,
        envelope_lifetime: timedelta = DEFAULT_ENVELOPE_LIFETIME,
    ) -> None:
        self._org_id, self._records, self._policy = org_id, records, policy
        self._sealer, self._protection, self._metrics = sealer, protection, metrics
        self._clock, self._new_id = clock, new_id
        self._channels, self._on_accepted = deliverable_channels, on_accepted
        self.envelope_lifetime = envelope_lifetime

    async def __call__(
        self,
        client: Client,
        command: SubmitDisclosure,
        *,
        idempotency_key: str | None = None,
        body_digest: str = "",
    ) -> SubmitResult:
        """Run one submission end to end; idempotent per (client, Idempotency-Key)."""
        if not command.record_checked and (path := non_json_path(command.record)) is not None:
            raise SubmissionInvalidError(f"{path[:200]} is not a finite JSON number")
        keep = None
        try:
            if idempotency_key is not None:
                prior = await self._records.prior(client.name, idempotency_key, body_digest)
                if prior is not None:
                    return result_from_stored(prior)
            result, write = await self._process(client, command)
            # Sealed (or kept in `write`): the record need not outlive the write.
            del command
            if idempotency_key is not None:
                keep = KeptReply(
                    client.name, idempotency_key, body_digest, result_to_stored(result)
                )
            with self._stage("persist"):
                earlier = await self._records.record(write, keep)
        except IdempotencyKeyReusedError as exc:
            return Conflict(exc.code)
        if earlier is not None:
            return result_from_stored(earlier)
        if isinstance(result, Queued) and self._on_accepted is not None:
            self._on_accepted()
        reason = result.reasons[0] if isinstance(result, Denied) and result.reasons else ""
        self._metrics.disclosures.labels(result.status, reason).inc()
        return result

    async def _process(
        self, client: Client, command: SubmitDisclosure
    ) -> tuple[Queued | Held | Denied, Write]:
        now = self._clock()
        snapshot = self._policy()
        agreement = snapshot.agreements.get(command.agreement)
        partner = snapshot.partners.get(agreement.partner) if agreement else None
        key = self._encryption_key(agreement, snapshot.keys, now)
        with self._stage("decide"):
            decision = decide(
                DisclosureRequest(
                    agreement_id=command.agreement,
                    purpose=command.purpose,
                    subject_identifiers=frozenset(command.subject),
                    has_approval_facts=command.annex_b is not None,
                ),
                agreement,
                DecisionContext(
                    today=now.date(),
                    client_agreements=client.agreements,
                    subject_opted_out=await self._opted_out(agreement, command),
                    # Email carries the signed JWT (or S/MIME): no partner JWK is needed.
                    partner_has_valid_key=key is not None or _by_email(partner),
                    partner_channel=str(partner.channel.type) if partner else None,
                    deliverable_channels=self._channels,
                ),
            )
        new = self._new_disclosure(client, command, agreement, decision, now, partner=partner)
        actor = Actor(ActorKind.CLIENT, client.name)
        # Every later log line of this request (the access log included) carries these ids.
        bound_context(
            {"disclosure_id": new.id, "agreement": new.agreement_id, "partner": new.partner_id}
        )
        log.info("decision", outcome=str(decision.outcome), reasons=list(decision.reasons))
        if decision.outcome is Outcome.DENIED or agreement is None or partner is None:
            return Denied(new.id, decision.reasons), PolicyRefusal(new, actor, now)
        if decision.outcome is Outcome.NEEDS_APPROVAL:
            return Held(new.id), Hold(new, command.to_held(), actor, now)
        sealed, (sent, removed, refused) = await self.seal_for(
            command, agreement=agreement, partner=partner, key=key, disclosure_id=new.id, now=now
        )
        recorded, unknown = recordable_paths(removed)
        accepted = dataclasses.replace(
            new,
            fields_sent=sent,
            fields_removed=recorded,
            unknown_fields_removed=unknown,
            fields_refused=refused,
            key_ids=(sealed.signing_kid, sealed.encryption_kid),
            expires_at=now + self.envelope_lifetime,
        )
        return Queued(new.id), AcceptedDisclosure(accepted, sealed.body, sealed.digest, actor, now)

    async def seal_for(
        self,
        command: SubmitDisclosure,
        *,
        agreement: Agreement,
        partner: Partner,
        key: PartnerKey | None,
        disclosure_id: str,
        now: datetime,
    ) -> tuple[SealedEnvelope, FieldLists]:
        """Minimise the record and seal it for the partner (also used when an approval lands).

        Returns the paths sent, removed and refused (`{path, code}`: names, never values).
        """
        with self._stage("minimise"):
            minimised = minimise(
                command.record,
                agreement,
                command.purpose,
                pseudonym_key=self._protection.pseudonym_key,
                today=now.date(),
                subject=command.subject,
            )
        claims = EnvelopeClaims(
            iss=self._org_id,
            aud=partner.id,
            jti=disclosure_id,
            iat=now,
            agreement=EnvelopeAgreement(agreement.id, agreement.version),
            purpose=command.purpose,
            subject=minimised.subject,
            data=minimised.data,
            retain_until=agreement.retain_until(now.date()),
            onward_sharing=str(agreement.onward_sharing),
            exp=now + self.envelope_lifetime,
            onward_recipients=agreement.onward_recipients,
        )
        with self._stage("seal"):
            if _by_email(partner):
                signed = await self._sealer.sign(claims)
                sealed = seal_signed(signed, self._protection, disclosure_id)
            elif key is not None:
                sealed = await self._sealer.seal(claims, key)
            else:  # decide() denies a partner without a valid key
                raise PartnerKeyError("no usable encryption key", code="partner_key_missing")
        refused = tuple(item.to_dict() for item in minimised.refused)
        return sealed, (minimised.sent, minimised.removed, refused)

    @staticmethod
    def _encryption_key(
        agreement: Agreement | None, keys: Mapping[str, tuple[PartnerKey, ...]], now: datetime
    ) -> PartnerKey | None:
        if agreement is None:
            return None
        try:
            return encryption_key_for(keys.get(agreement.partner, ()), agreement.partner, now)
        except PartnerKeyError:
            return None

    async def _opted_out(self, agreement: Agreement | None, command: SubmitDisclosure) -> bool:
        if agreement is None or not opt_out_applies(agreement, command.purpose):
            return False
        if not command.nhs_number:
            return False
        return await self._records.opted_out(
            self._protection.blind_index("nhs_number", command.nhs_number)
        )

    def _new_disclosure(
        self,
        client: Client,
        command: SubmitDisclosure,
        agreement: Agreement | None,
        decision: Decision,
        now: datetime,
        *,
        partner: Partner | None,
    ) -> NewDisclosure:
        disclosure_id = self._new_id()
        retain = agreement.retain_until(now.date()) if agreement else now.date()
        return NewDisclosure(
            id=disclosure_id,
            client=client.name,
            # A client's text is kept only when it names something known (rule: no free text
            # from a refused request in the database or the audit log).
            agreement_id=agreement.id if agreement else UNKNOWN,
            agreement_version=agreement.version if agreement else 0,
            partner_id=agreement.partner if agreement else "",
            purpose=command.purpose if command.purpose in _PURPOSES else UNKNOWN,
            lawful_basis=(
                lawful_basis_summary(agreement, partner, command.purpose) if agreement else ""
            ),
            subject=SubjectIndexes.of(
                self._protection, nhs_number=command.nhs_number, local_id=command.local_id
            ),
            requested_by_user=command.requested_by_user,
            requested_by_role=command.requested_by_role,
            # Free text may name people: stored only sealed under the gateway's data key.
            reason=self._protection.seal_text(command.reason, disclosure_id),
            retain_until=_midnight(retain),
            decision_reasons=tuple(dict.fromkeys((*decision.reasons, *decision.warnings))),
        )

    @contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        """Time one stage into its histogram (a stage that raises is not observed)."""
        started = time.perf_counter()
        yield
        self._metrics.stage_seconds.labels(name).observe(time.perf_counter() - started)
