"""What a disclosure is in the store: its statuses, the legal moves between them, its rows."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from sqlalchemy import RowMapping

from gateway.errors import GatewayError

DISCLOSURE, NOTICE = "disclosure", "notice"
"""The kinds of record the delivery pipeline carries (`disclosures.record_kind`)."""


class Status(enum.StrEnum):
    """The life of a disclosure (DESIGN.md, "Statuses of a disclosure")."""

    PENDING_APPROVAL = "pending_approval"
    REJECTED = "rejected"
    DENIED = "denied"
    QUEUED = "queued"
    DISPATCHED = "dispatched"
    RECEIPTED = "receipted"
    FAILED = "failed"


TERMINAL = frozenset({Status.REJECTED, Status.DENIED, Status.RECEIPTED})
TRANSITIONS: Mapping[Status, frozenset[Status]] = {
    # denied: approved, but the decision re-run at that moment refused it
    Status.PENDING_APPROVAL: frozenset({Status.QUEUED, Status.REJECTED, Status.DENIED}),
    Status.QUEUED: frozenset({Status.DISPATCHED, Status.RECEIPTED, Status.FAILED}),
    # back to queued: receipt deadline passed and the delivery worker tries again
    Status.DISPATCHED: frozenset({Status.RECEIPTED, Status.FAILED, Status.QUEUED}),
    Status.FAILED: frozenset({Status.QUEUED}),  # an admin replays a dead letter
}


def can_transition(current: Status, new: Status) -> bool:
    """True when the status machine allows moving from `current` to `new`."""
    return new in TRANSITIONS.get(current, frozenset())


class AtRestKeys(Protocol):
    """The gateway's own keys for what is stored: blind indexes and sealed held records
    (`gateway.protection.Protection` implements this)."""

    def blind_index(self, kind: Literal["nhs_number", "local_id"], value: str) -> str:
        """A keyed hash of a subject identifier."""
        ...

    def seal_at_rest(self, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt under the data key, bound to `aad`."""
        ...

    def open_at_rest(self, sealed: bytes, aad: bytes) -> bytes:
        """Decrypt what `seal_at_rest` sealed with the same `aad`."""
        ...


class IllegalTransitionError(GatewayError):
    """The disclosure's current status does not allow the requested move."""

    code = "illegal_transition"


@dataclass(frozen=True, slots=True)
class SubjectIndexes:
    """A data subject as the store knows them: keyed hashes only, never the identifiers."""

    nhs_number: str | None = None
    local_id: str | None = None

    @classmethod
    def of(
        cls, protection: AtRestKeys, *, nhs_number: str | None, local_id: str | None
    ) -> SubjectIndexes:
        """Blind-index whichever identifiers the request carried."""
        return cls(
            protection.blind_index("nhs_number", nhs_number) if nhs_number else None,
            protection.blind_index("local_id", local_id) if local_id else None,
        )


@dataclass(frozen=True, slots=True)
class NewDisclosure:
    """Everything the pipeline knows about a disclosure when it first records it (rule 7)."""

    id: str
    client: str
    agreement_id: str
    agreement_version: int
    partner_id: str
    purpose: str
    lawful_basis: str
    subject: SubjectIndexes
    requested_by_user: str
    requested_by_role: str
    reason: str
    retain_until: datetime
    fields_sent: tuple[str, ...] = ()
    fields_removed: tuple[str, ...] = ()
    fields_refused: tuple[Mapping[str, str], ...] = ()  # {path, code}: never the value
    decision_reasons: tuple[str, ...] = ()
    approver: str | None = None
    key_ids: tuple[str, ...] = ()
    unknown_fields_removed: int = 0  # record keys not in the dictionary: counted, never kept
    expires_at: datetime | None = None  # the envelope's exp


@dataclass(frozen=True, slots=True)
class DisclosureEvent:
    """One step in a disclosure's timeline."""

    at: datetime
    type: str
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Disclosure:
    """A stored disclosure (metadata only: no record values, no identifiers)."""

    id: str
    client: str
    agreement_id: str
    agreement_version: int
    partner_id: str
    purpose: str
    lawful_basis: str
    status: Status
    fields_sent: tuple[str, ...]
    fields_removed: tuple[str, ...]
    requested_by_user: str
    requested_by_role: str
    reason: str
    decision_reasons: tuple[str, ...]
    approver: str | None
    key_ids: tuple[str, ...]
    digest: str | None
    retain_until: datetime
    envelope_purged_at: datetime | None
    created_at: datetime
    updated_at: datetime
    attempts: int
    next_attempt_at: datetime | None
    expires_at: datetime | None = None  # the envelope's exp (none before envelopes had one)
    fields_refused: tuple[Mapping[str, str], ...] = ()  # {path, code}: never the value
    record_kind: str = "disclosure"  # or NOTICE: an Article 19 notice, delivered the same way

    @classmethod
    def from_row(cls, row: RowMapping) -> Disclosure:
        """Build from a `disclosures` row."""
        tuples = ("fields_sent", "fields_removed", "decision_reasons", "key_ids")
        values = {name: row[name] for name in cls.__dataclass_fields__}
        values.update({name: tuple(row[name]) for name in tuples})
        values["fields_refused"] = tuple(row["fields_refused"] or ())
        values["status"] = Status(row["status"])
        return cls(**values)
