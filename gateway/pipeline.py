"""The submit use case: authorise, decide, (hold,) minimise, seal, persist — one transaction.

Everything here runs in memory except the one write transaction at the end; the plaintext
record never reaches the database (only the envelope sealed to the partner, or, for a hold, the
request sealed under the gateway's data key).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as day_start
from typing import Any

import structlog
import uuid_utils
from prometheus_client import Histogram
from sqlalchemy.ext.asyncio import AsyncConnection

from agreements.decision import Decision, DecisionContext, DisclosureRequest, Outcome, decide
from agreements.minimise import minimise
from agreements.model import Agreement, OptOutBasis, Partner
from gateway import audit
from gateway.clients import Client
from gateway.group_commit import GroupCommit
from gateway.http.schemas import DisclosureSubmission
from gateway.keys import CouncilKeyring
from gateway.logging import bound_context
from gateway.metrics import Metrics
from gateway.partner_keys import PartnerKey, PartnerKeyError, encryption_key_for
from gateway.policy_cache import PolicyCache
from gateway.protection import Protection
from gateway.seal_pool import SealPool
from gateway.sealing import AgreementRef, EnvelopeClaims, SealedEnvelope, seal
from gateway.store import disclosures, idempotency, optouts
from gateway.store.database import Store
from gateway.store.disclosure_model import NewDisclosure, SubjectIndexes

log = structlog.get_logger("gateway.pipeline")
Writer = Callable[[AsyncConnection], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SubmitOutcome:
    """What the API answers: 202 with {id, status}, or a problem body with reasons."""

    http_status: int
    body: dict[str, Any]


class _KeyTakenError(Exception):
    """A concurrent request with the same Idempotency-Key committed first."""


def lawful_basis_summary(agreement: Agreement) -> str:
    """One line for the Article 30 record: Article 6, 9, 10, Schedule 1, gateways, exemption."""
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
    return "; ".join(parts)


# Channels this version can deliver over; email and SFTP partners are in the catalog but have no
# adapter yet, so a disclosure to them is refused now rather than retried until it fails.
DELIVERABLE_CHANNELS = frozenset({"webhook", "mesh"})


def with_channel_check(decision: Decision, partner: Partner | None) -> Decision:
    """Deny with `partner_channel_unavailable` when nothing here can deliver to the partner."""
    if partner is None or str(partner.channel.type) in DELIVERABLE_CHANNELS:
        return decision
    reasons = (*decision.reasons, "partner_channel_unavailable")
    return dataclasses.replace(decision, outcome=Outcome.DENIED, reasons=reasons)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, day_start(), tzinfo=UTC)


class _StageTimer:
    """Times one pipeline stage into its histogram (a stage that raises is not observed)."""

    __slots__ = ("_histogram", "_started")

    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram
        self._started = 0.0

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            self._histogram.observe(time.perf_counter() - self._started)


def new_disclosure_id() -> str:
    """A UUIDv7 (RFC 9562): time-ordered, so a commit's new index entries share pages.

    With random (v4) ids the disclosure, event and outbox indexes each took a page per new
    disclosure; in time order they take about one page per commit: about 30% less written to
    SQLite's WAL per accepted disclosure. The time it carries (to the millisecond) is when
    the disclosure was made, which its caller and the partner see anyway.
    """
    return str(uuid_utils.uuid7())


class Pipeline:
    """POST /v1/disclosures behind the HTTP layer; also used by the demo and benchmarks."""

    def __init__(
        self,
        *,
        org_id: str,
        store: Store,
        policy: PolicyCache,
        keyring: CouncilKeyring,
        protection: Protection,
        metrics: Metrics,
        clock: Callable[[], datetime],
        new_id: Callable[[], str] = new_disclosure_id,
        group_commit: GroupCommit | None = None,
    ) -> None:
        self._group = group_commit
        self.on_accepted: Callable[[], None] | None = None  # wakes an in-process delivery worker
        self.seal_pool: SealPool | None = None  # `gateway serve` seals in a worker process
        self._org_id, self._store, self._policy = org_id, store, policy
        self._keyring, self._protection, self._metrics = keyring, protection, metrics
        self._clock, self._new_id = clock, new_id
        self._stage_timers: dict[str, Histogram] = {}  # labelled children, looked up once

    def _stage(self, name: str) -> _StageTimer:
        timer = self._stage_timers.get(name)
        if timer is None:
            timer = self._stage_timers[name] = self._metrics.stage_seconds.labels(name)
        return _StageTimer(timer)

    async def submit(
        self,
        client: Client,
        submission: DisclosureSubmission,
        *,
        idempotency_key: str | None,
        body_digest: str,
    ) -> SubmitOutcome:
        """Run one submission end to end; idempotent per (client, Idempotency-Key)."""
        if idempotency_key is not None:
            prior = await self._prior(client, idempotency_key, body_digest)
            if prior is not None:
                return prior
        outcome, write, accepted = await self._process(client, submission)
        if accepted is not None and idempotency_key is None and self._group is not None:
            with self._stage("persist"):
                await self._group.record(accepted)
            self._metrics.disclosures.labels("queued", "").inc()
            if self.on_accepted is not None:
                self.on_accepted()
            return outcome

        async def persist(conn: AsyncConnection) -> None:
            await write(conn)
            if idempotency_key is not None:
                stored = await idempotency.remember(
                    conn,
                    client.name,
                    idempotency_key,
                    request_hash=body_digest,
                    response={"http_status": outcome.http_status, "body": outcome.body},
                    at=self._clock(),
                )
                if not stored:
                    raise _KeyTakenError

        try:
            with self._stage("persist"):
                await self._store.batch(persist)  # shares a commit with concurrent writes
        except _KeyTakenError:
            assert idempotency_key is not None
            prior = await self._prior(client, idempotency_key, body_digest)
            if prior is None:  # pragma: no cover - the row was just seen by the insert
                raise
            return prior
        if accepted is not None and self.on_accepted is not None:
            self.on_accepted()
        reason = outcome.body.get("reasons", [""])[0] if outcome.http_status != 202 else ""
        self._metrics.disclosures.labels(outcome.body.get("status", "denied"), reason).inc()
        return outcome

    async def _prior(self, client: Client, key: str, digest: str) -> SubmitOutcome | None:
        async with self._store.read() as conn:
            try:
                prior = await idempotency.lookup(conn, client.name, key, digest)
            except idempotency.IdempotencyKeyReusedError as exc:
                return SubmitOutcome(
                    409, {"code": exc.code, "title": "Idempotency-Key reused with another body"}
                )
        if prior is None:
            return None
        return SubmitOutcome(int(prior.response["http_status"]), dict(prior.response["body"]))

    async def _process(
        self, client: Client, sub: DisclosureSubmission
    ) -> tuple[SubmitOutcome, Writer, disclosures.Accepted | None]:
        now = self._clock()
        snapshot = self._policy.snapshot
        agreement = snapshot.agreements.get(sub.agreement)
        partner = snapshot.partners.get(agreement.partner) if agreement else None
        key = self._encryption_key(agreement, snapshot.keys, now)
        with self._stage("decide"):
            opted_out = await self._opted_out(agreement, sub)
            present = {k for k, v in sub.subject.model_dump().items() if v}
            request = DisclosureRequest(
                agreement_id=sub.agreement,
                purpose=sub.purpose,
                subject_identifiers=frozenset(present),
                has_approval_facts=sub.annex_b is not None,
            )
            context = DecisionContext(
                today=now.date(),
                client_agreements=client.agreements,
                subject_opted_out=opted_out,
                partner_has_valid_key=key is not None,
            )
            decision = with_channel_check(decide(request, agreement, context), partner)
        new = self._new_disclosure(client, sub, agreement, decision, now)
        actor = audit.Actor(audit.ActorKind.CLIENT, client.name)
        # Every later log line of this request (the access log included) carries these ids.
        bound_context(
            {"disclosure_id": new.id, "agreement": new.agreement_id, "partner": new.partner_id}
        )
        log.info("decision", outcome=str(decision.outcome), reasons=list(decision.reasons))
        if decision.outcome is Outcome.DENIED or agreement is None or partner is None:
            body = {
                "code": "disclosure_denied",
                "title": "Disclosure refused by policy",
                "reasons": list(decision.reasons),
                "id": new.id,
            }

            async def write_denied(conn: AsyncConnection) -> None:
                await disclosures.record_denied(conn, new, actor=actor, at=now)

            return SubmitOutcome(403, body), write_denied, None
        if decision.outcome is Outcome.NEEDS_APPROVAL:
            held = sub.model_dump_json().encode()

            async def write_held(conn: AsyncConnection) -> None:
                await disclosures.record_held(
                    conn, new, request=held, protection=self._protection, actor=actor, at=now
                )

            return (
                SubmitOutcome(202, {"id": new.id, "status": "pending_approval"}),
                write_held,
                None,
            )
        assert key is not None
        claims, (sent, removed) = self._claims_for(
            sub, agreement=agreement, partner=partner, disclosure_id=new.id, now=now
        )
        with self._stage("seal"):
            if self.seal_pool is None:
                sealed = seal(claims, self._keyring.active_signer(now), key)
            else:  # on another core, while this one goes on with other requests
                sealed = await self.seal_pool.seal(claims, key)
        accepted = dataclasses.replace(
            new,
            fields_sent=sent,
            fields_removed=removed,
            key_ids=(sealed.signing_kid, sealed.encryption_kid),
        )

        item = disclosures.Accepted(accepted, sealed.body, sealed.digest, actor, now)

        async def write_accepted(conn: AsyncConnection) -> None:
            await disclosures.record_accepted_many(conn, [item])

        return SubmitOutcome(202, {"id": new.id, "status": "queued"}), write_accepted, item

    def seal_for(
        self,
        sub: DisclosureSubmission,
        *,
        agreement: Agreement,
        partner: Partner,
        key: PartnerKey,
        disclosure_id: str,
        now: datetime,
    ) -> tuple[SealedEnvelope, tuple[tuple[str, ...], tuple[str, ...]]]:
        """Minimise the record and seal it for the partner (also used when an approval lands)."""
        claims, paths = self._claims_for(
            sub, agreement=agreement, partner=partner, disclosure_id=disclosure_id, now=now
        )
        with self._stage("seal"):
            sealed = seal(claims, self._keyring.active_signer(now), key)
        return sealed, paths

    def _claims_for(
        self,
        sub: DisclosureSubmission,
        *,
        agreement: Agreement,
        partner: Partner,
        disclosure_id: str,
        now: datetime,
    ) -> tuple[EnvelopeClaims, tuple[tuple[str, ...], tuple[str, ...]]]:
        """The envelope's claims (the minimised record), and the paths sent and removed."""
        with self._stage("minimise"):
            minimised = minimise(
                sub.record,
                agreement,
                sub.purpose,
                pseudonym_key=self._protection.pseudonym_key,
                today=now.date(),
                subject=sub.subject.model_dump(exclude_none=True),
            )
        claims = EnvelopeClaims(
            iss=self._org_id,
            aud=partner.id,
            jti=disclosure_id,
            iat=now,
            agreement=AgreementRef(agreement.id, agreement.version),
            purpose=sub.purpose,
            subject=minimised.subject,
            data=minimised.data,
            retain_until=agreement.retain_until(now.date()),
            onward_sharing=str(agreement.onward_sharing),
        )
        return claims, (minimised.sent, minimised.removed)

    def _encryption_key(
        self,
        agreement: Agreement | None,
        keys: Any,
        now: datetime,
    ) -> PartnerKey | None:
        if agreement is None:
            return None
        try:
            return encryption_key_for(keys.get(agreement.partner, ()), agreement.partner, now)
        except PartnerKeyError:
            return None

    async def _opted_out(self, agreement: Agreement | None, sub: DisclosureSubmission) -> bool:
        if agreement is None or agreement.national_data_opt_out != OptOutBasis.APPLIES:
            return False
        if not sub.subject.nhs_number:
            return False
        index = self._protection.blind_index("nhs_number", sub.subject.nhs_number)
        async with self._store.read() as conn:
            return await optouts.is_opted_out(conn, index)

    def _new_disclosure(
        self,
        client: Client,
        sub: DisclosureSubmission,
        agreement: Agreement | None,
        decision: Decision,
        now: datetime,
    ) -> NewDisclosure:
        disclosure_id = self._new_id()
        retain = agreement.retain_until(now.date()) if agreement else now.date()
        return NewDisclosure(
            id=disclosure_id,
            client=client.name,
            agreement_id=sub.agreement[:120],
            agreement_version=agreement.version if agreement else 0,
            partner_id=agreement.partner if agreement else "",
            purpose=sub.purpose[:60],
            lawful_basis=lawful_basis_summary(agreement) if agreement else "",
            subject=SubjectIndexes.of(
                self._protection, nhs_number=sub.subject.nhs_number, local_id=sub.subject.local_id
            ),
            requested_by_user=sub.requested_by.user,
            requested_by_role=sub.requested_by.role,
            # Free text may name people: stored only sealed under the gateway's data key.
            reason=self._protection.seal_text(sub.reason, disclosure_id),
            retain_until=_midnight(retain),
            decision_reasons=tuple(dict.fromkeys((*decision.reasons, *decision.warnings))),
        )
