"""The submit command and its results: the application's own types, with no HTTP in them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

# 2: Annex B facts carry `prejudice`, `data_requested` and `requester_reference`. Version 1 and
# the unversioned API body that came before it are still read (those facts are then absent).
HELD_FORMAT_VERSION = 2
_READABLE_VERSIONS = frozenset({1, 2})


class HeldFormatError(ValueError):
    """A held request is in a format this version cannot read."""


@dataclass(frozen=True, slots=True)
class AnnexBFacts:
    """The ICO Annex B facts of a request decided case by case (police, DWP, one-off).

    `prejudice`, `data_requested` and `requester_reference` are None or empty only in requests
    held before they were asked for.
    """

    requesting_officer: str
    rank: str
    authorising_officer: str
    offence_or_prejudice: str
    why_necessary: str
    prejudice: str | None = None
    data_requested: tuple[str, ...] = ()
    requester_reference: str | None = None
    reference: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able facts, every key present."""
        return {
            "requesting_officer": self.requesting_officer,
            "rank": self.rank,
            "authorising_officer": self.authorising_officer,
            "offence_or_prejudice": self.offence_or_prejudice,
            "why_necessary": self.why_necessary,
            "prejudice": self.prejudice,
            "data_requested": list(self.data_requested),
            "requester_reference": self.requester_reference,
            "reference": self.reference,
        }

    @classmethod
    def from_dict(cls, facts: Mapping[str, Any]) -> AnnexBFacts:
        """Read facts as `to_dict` wrote them, or as an earlier version held them."""
        return cls(
            requesting_officer=facts["requesting_officer"],
            rank=facts["rank"],
            authorising_officer=facts["authorising_officer"],
            offence_or_prejudice=facts["offence_or_prejudice"],
            why_necessary=facts["why_necessary"],
            prejudice=facts.get("prejudice"),
            data_requested=tuple(facts.get("data_requested") or ()),
            requester_reference=facts.get("requester_reference"),
            reference=facts.get("reference"),
        )


@dataclass(frozen=True, slots=True)
class SubmitDisclosure:
    """One request to disclose a record under an agreement, as a case system made it."""

    agreement: str
    purpose: str
    record: Mapping[str, Any]
    requested_by_user: str
    requested_by_role: str
    reason: str
    nhs_number: str | None = None
    local_id: str | None = None
    annex_b: AnnexBFacts | None = None
    # True when whoever built the command has found `record` plainly JSON already (the HTTP
    # schema does, to name the path in its 422): the use case then skips walking it again.
    record_checked: bool = field(default=False, compare=False, repr=False)

    @property
    def subject(self) -> dict[str, str]:
        """The identifiers given (names to values), for minimisation of the subject claim."""
        found = {"nhs_number": self.nhs_number, "local_id": self.local_id}
        return {name: value for name, value in found.items() if value}

    def to_held(self) -> bytes:
        """The internal, versioned form a held request is kept in (sealed at rest)."""
        return orjson.dumps(
            {
                "v": HELD_FORMAT_VERSION,
                "agreement": self.agreement,
                "purpose": self.purpose,
                "subject": self.subject,
                "record": self.record,
                "requested_by": {"user": self.requested_by_user, "role": self.requested_by_role},
                "reason": self.reason,
                "annex_b": None if self.annex_b is None else self.annex_b.to_dict(),
            }
        )

    @classmethod
    def from_held(cls, raw: bytes) -> SubmitDisclosure:
        """Read a held request: versions 1 and 2, or the API body that earlier versions kept."""
        held = orjson.loads(raw)
        if not isinstance(held, dict) or held.get("v", 1) not in _READABLE_VERSIONS:
            raise HeldFormatError("held request: unknown format version")
        subject, facts = held["subject"], held.get("annex_b")
        return cls(
            agreement=held["agreement"],
            purpose=held["purpose"],
            record=held["record"],
            requested_by_user=held["requested_by"]["user"],
            requested_by_role=held["requested_by"]["role"],
            reason=held["reason"],
            nhs_number=subject.get("nhs_number"),
            local_id=subject.get("local_id"),
            annex_b=None if facts is None else AnnexBFacts.from_dict(facts),
        )


@dataclass(frozen=True, slots=True)
class Queued:
    """Allowed: sealed and recorded for delivery."""

    id: str
    status: str = "queued"


@dataclass(frozen=True, slots=True)
class Held:
    """Recorded, waiting for an approver's decision."""

    id: str
    status: str = "pending_approval"


@dataclass(frozen=True, slots=True)
class Denied:
    """Refused by policy, with every reason code; the refusal is recorded too."""

    id: str
    reasons: tuple[str, ...] = field(default=())
    status: str = "denied"


@dataclass(frozen=True, slots=True)
class Conflict:
    """The Idempotency-Key was used before with a different request."""

    code: str = "idempotency_key_reused"


SubmitResult = Queued | Held | Denied | Conflict


def result_to_stored(result: Queued | Held | Denied) -> dict[str, Any]:
    """The result kept beside an Idempotency-Key, to answer a retry the same way."""
    stored: dict[str, Any] = {"status": result.status, "id": result.id}
    if isinstance(result, Denied):
        stored["reasons"] = list(result.reasons)
    return stored


def result_from_stored(stored: Mapping[str, Any]) -> Queued | Held | Denied:
    """Read a kept result; rows written by earlier versions kept the HTTP reply instead."""
    if "http_status" in stored:
        stored = stored["body"]
    status, id_ = stored.get("status", "denied"), str(stored["id"])
    if status == "queued":
        return Queued(id_)
    if status == "pending_approval":
        return Held(id_)
    return Denied(id_, tuple(stored.get("reasons", ())))


def plainly_json(value: Any, *, free_of: str | None = None) -> bool:
    """True when every node is an exact JSON type, every float finite and, with `free_of`, no
    key or string holds that character: the first pass of the record checks, which build a path
    only when it fails. Iterative: a record may nest deeper than Python's recursion limit."""
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is str:
            if free_of is not None and free_of in item:
                return False
        elif kind is dict:
            for key in item:
                if type(key) is not str or (free_of is not None and free_of in key):
                    return False
            pending.extend(item.values())
        elif kind is list:
            pending.extend(item)
        elif kind is float:
            if not math.isfinite(item):
                return False
        elif not (kind is int or kind is bool or item is None):
            return False
    return True


def non_json_path(value: Any, path: str = "record") -> str | None:
    """The path of the first value an envelope cannot carry as JSON (a number too large for a
    double, NaN or an infinity, or a non-JSON type), or None: refused at submission rather than
    sealed as something else."""
    if plainly_json(value):
        return None
    return _first_non_json(value, path)


def _first_non_json(value: Any, path: str) -> str | None:
    pending: list[tuple[str, Any]] = [(path, value)]
    while pending:
        here, item = pending.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return here
        elif isinstance(item, dict):
            if not all(isinstance(key, str) for key in item):
                return here
            pending.extend((f"{here}.{key}", child) for key, child in reversed(item.items()))
        elif isinstance(item, list | tuple):
            pending.extend((f"{here}[*]", child) for child in reversed(item))
        elif not (item is None or isinstance(item, str | int | bool)):
            return here
    return None
