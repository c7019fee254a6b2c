"""The submit command and its results: the application's own types, with no HTTP in them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

HELD_FORMAT_VERSION = 1


class HeldFormatError(ValueError):
    """A held request is in a format this version cannot read."""


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
    annex_b: Mapping[str, Any] | None = None

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
                "annex_b": self.annex_b,
            }
        )

    @classmethod
    def from_held(cls, raw: bytes) -> SubmitDisclosure:
        """Read a held request: version 1, or the API body that earlier versions kept."""
        held = orjson.loads(raw)
        if not isinstance(held, dict) or held.get("v", HELD_FORMAT_VERSION) != HELD_FORMAT_VERSION:
            raise HeldFormatError("held request: unknown format version")
        subject = held["subject"]
        return cls(
            agreement=held["agreement"],
            purpose=held["purpose"],
            record=held["record"],
            requested_by_user=held["requested_by"]["user"],
            requested_by_role=held["requested_by"]["role"],
            reason=held["reason"],
            nhs_number=subject.get("nhs_number"),
            local_id=subject.get("local_id"),
            annex_b=held.get("annex_b"),
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


def non_json_path(value: Any, path: str = "record") -> str | None:
    """The path of the first value an envelope cannot carry as JSON (a number too large for a
    double, NaN or an infinity, or a non-JSON type), or None: refused at submission rather than
    sealed as something else."""
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if value is None or isinstance(value, str | int | bool):
        return None
    if isinstance(value, dict):
        for key, child in value.items():
            if not isinstance(key, str):
                return path
            if (found := non_json_path(child, f"{path}.{key}")) is not None:
                return found
        return None
    if isinstance(value, list | tuple):
        for child in value:
            if (found := non_json_path(child, f"{path}[*]")) is not None:
                return found
        return None
    return path
