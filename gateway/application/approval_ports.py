"""What the approval use case is given: the policy in force, the sealer, and the records it
reads and writes (the store implements them; unit tests fake them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from agreements.model import Agreement, Partner
from gateway.application.commands import SubmitDisclosure
from gateway.application.submit import FieldLists, PolicyView
from gateway.audit import Actor
from gateway.partner_keys import PartnerKey
from gateway.protection import Protection
from gateway.sealing import SealedEnvelope
from gateway.store.approvals import Approval
from gateway.store.approvers_repo import StoredApprover
from gateway.store.clients_repo import StoredClient
from gateway.store.disclosure_model import Disclosure, Status
from gateway.store.unit_of_work import Connection


class PolicySource(Protocol):
    """The policy in force (`gateway.policy_cache.PolicyCache`)."""

    @property
    def snapshot(self) -> PolicyView: ...

    async def refresh(self) -> PolicyView: ...


class EnvelopeSealer(Protocol):
    """Minimises and seals for the partner as the submit use case does (`SubmitDisclosures`)."""

    async def seal_for(
        self,
        command: SubmitDisclosure,
        *,
        agreement: Agreement,
        partner: Partner,
        key: PartnerKey | None,
        disclosure_id: str,
        now: datetime,
    ) -> tuple[SealedEnvelope, FieldLists]: ...

    @property
    def envelope_lifetime(self) -> timedelta:
        """How long after sealing an envelope expires (its exp)."""
        ...


class HeldRecords(Protocol):
    """Held disclosures and their moves (`gateway.store.disclosures`)."""

    async def get(self, conn: Connection, id_: str) -> Disclosure | None: ...

    async def held_request(self, conn: Connection, id_: str, protection: Protection) -> bytes: ...

    async def release_approved(
        self,
        conn: Connection,
        id_: str,
        *,
        envelope: bytes,
        digest: str,
        approver: str,
        fields_sent: tuple[str, ...],
        fields_removed: tuple[str, ...],
        key_ids: tuple[str, ...],
        actor: Actor,
        at: datetime,
        expires_at: datetime | None = None,
        fields_refused: Sequence[Mapping[str, str]] = (),
    ) -> None: ...

    async def transition(
        self,
        conn: Connection,
        id_: str,
        new_status: Status,
        *,
        event_type: str,
        actor: Actor,
        at: datetime,
        detail: Mapping[str, Any] | None = None,
        changes: Mapping[str, Any] | None = None,
    ) -> Status: ...


class DecisionRecords(Protocol):
    """Approvers' decisions (`gateway.store.approvals`)."""

    async def record(self, conn: Connection, approval: Approval) -> None: ...

    async def for_disclosure(self, conn: Connection, disclosure_id: str) -> list[Approval]: ...

    async def awaiting_decision(self, conn: Connection) -> list[Disclosure]: ...


class ApproverLookup(Protocol):
    """Registered approvers by normalised name (`gateway.store.approvers_repo`)."""

    async def get(self, conn: Connection, name_key: str) -> StoredApprover | None: ...


class ClientLookup(Protocol):
    """Client systems by name, to see whether the requester's system is still allowed."""

    async def get(self, conn: Connection, name: str) -> StoredClient | None: ...


class OptOutLookup(Protocol):
    """The national data opt-out list (`gateway.store.optouts`)."""

    async def is_opted_out(self, conn: Connection, nhs_index: str) -> bool: ...


@dataclass(frozen=True)
class HeldDisclosure:
    """What an approver sees: the metadata, the Annex B facts, what would be sent."""

    disclosure: Disclosure
    annex_b: dict[str, Any] | None
    reason: str
    would_send: tuple[str, ...]
    would_remove: tuple[str, ...]
