"""Request and response bodies of the HTTP contract; the OpenAPI document is built from them."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from agreements.nhs_number import nhs_number_valid
from gateway.application.commands import (
    AnnexBFacts,
    SubmitDisclosure,
    non_json_path,
    plainly_json,
)
from gateway.disclosure_view import DisclosureReport

DisclosureStatus = Literal[
    "pending_approval", "rejected", "denied", "queued", "dispatched", "receipted", "failed"
]


NUL = "\x00"
_NAMEABLE_KEY = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def _no_nul(value: str) -> str:
    """PostgreSQL cannot store NUL in text: refuse it here, the same on every database."""
    if NUL in value:
        raise PydanticCustomError("string_contains_nul", "text must not contain a NUL character")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]


def nul_path(value: Any) -> str | None:
    """The path of the first key or string holding a NUL inside a JSON value, or None.

    Keys that are not plain identifiers are shown as `<key>`: a path names fields, never values.
    """
    if plainly_json(value, free_of=NUL):  # almost every record: no paths built
        return None
    pending: list[tuple[str, Any]] = [("", value)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, str):
            if NUL in item:
                return path
        elif isinstance(item, dict):
            for key, child in item.items():
                shown = key if _NAMEABLE_KEY.match(key) else "<key>"
                here = f"{path}.{shown}" if path else shown
                if NUL in key:
                    return here
                pending.append((here, child))
        elif isinstance(item, list):
            pending.extend(
                (f"{path}.{index}" if path else str(index), child)
                for index, child in enumerate(item)
            )
    return None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Subject(_Strict):
    """Who the record is about: at least one identifier."""

    nhs_number: str | None = Field(
        None,
        pattern=r"^\d{10}$",
        description="10-digit NHS number; the last digit must be its modulus 11 check digit",
    )
    local_id: Text | None = Field(None, min_length=1, max_length=64)

    @field_validator("nhs_number")
    @classmethod
    def _check_digit(cls, value: str | None) -> str | None:
        # A mistyped number would match nobody on the opt-out list: refuse it, never echo it.
        if value is not None and not nhs_number_valid(value):
            raise ValueError("not a valid NHS number (modulus 11 check digit)")
        return value

    @model_validator(mode="after")
    def _one_identifier(self) -> Subject:
        if self.nhs_number is None and self.local_id is None:
            raise ValueError("at least one of nhs_number or local_id is required")
        return self


class RequestedBy(_Strict):
    """The member of staff making the request (staff identifiers, not the subject's)."""

    user: Text = Field(min_length=1, max_length=128)
    role: Text = Field(min_length=1, max_length=128)


NOT_BLANK = r"\S"  # at least one character that is not whitespace
DataItem = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NOT_BLANK)]


def _fact(max_length: int, description: str) -> Any:
    """A required Annex B fact: real text, never blank or whitespace only."""
    return Field(min_length=1, max_length=max_length, pattern=NOT_BLANK, description=description)


class AnnexB(_Strict):
    """ICO Annex B facts of a request decided case by case (Schedule 2, one-off)."""

    requesting_officer: Text = _fact(200, "Who asks: name and collar or staff number")
    rank: Text = _fact(100, "The requester's rank or role")
    authorising_officer: Text = _fact(200, "The officer who authorised the request")
    requester_reference: Text = _fact(100, "The requesting body's reference (e.g. crime number)")
    offence_or_prejudice: Text = _fact(2000, "The offence under investigation, or the matter")
    prejudice: Text = _fact(2000, "What would be prejudiced if the data were not disclosed")
    why_necessary: Text = _fact(4000, "Why the data is necessary and cannot be got otherwise")
    data_requested: list[DataItem] = Field(
        min_length=1, max_length=50, description="Each item of data asked for"
    )
    reference: Text | None = Field(None, min_length=1, max_length=100, pattern=NOT_BLANK)

    def to_facts(self) -> AnnexBFacts:
        """The application's Annex B facts."""
        return AnnexBFacts(
            requesting_officer=self.requesting_officer,
            rank=self.rank,
            authorising_officer=self.authorising_officer,
            offence_or_prejudice=self.offence_or_prejudice,
            why_necessary=self.why_necessary,
            prejudice=self.prejudice,
            data_requested=tuple(self.data_requested),
            requester_reference=self.requester_reference,
            reference=self.reference,
        )


class DisclosureSubmission(_Strict):
    """Body of POST /v1/disclosures."""

    agreement: Text = Field(min_length=1, max_length=100, description="Agreement id")
    purpose: Text = Field(min_length=1, max_length=64, description="Purpose code")
    subject: Subject
    record: dict[str, Any] = Field(description="The source record, minimised by Gatehouse")
    requested_by: RequestedBy
    reason: Text = Field(min_length=1, max_length=2000, description="Why this disclosure is made")
    annex_b: AnnexB | None = None

    @field_validator("record")
    @classmethod
    def _record_is_plain(cls, record: dict[str, Any]) -> dict[str, Any]:
        """A number JSON cannot carry (1e400, NaN) is refused here, on every path, not sealed
        as null later, and so is a NUL; the message names where, never the value. One walk
        clears almost every record; the paths are looked for only when it fails."""
        if plainly_json(record, free_of=NUL):
            return record
        path = non_json_path(record)
        if path is not None:
            raise PydanticCustomError(
                "value_not_json", "{path} is not a finite JSON number", {"path": path[:200]}
            )
        path = nul_path(record)
        if path is not None:
            raise PydanticCustomError(
                "string_contains_nul",
                "text must not contain a NUL character (at record.{path})",
                {"path": path},
            )
        return record

    def to_command(self) -> SubmitDisclosure:
        """The application's command for this body."""
        return SubmitDisclosure(
            agreement=self.agreement,
            purpose=self.purpose,
            record=self.record,
            requested_by_user=self.requested_by.user,
            requested_by_role=self.requested_by.role,
            reason=self.reason,
            nhs_number=self.subject.nhs_number,
            local_id=self.subject.local_id,
            annex_b=None if self.annex_b is None else self.annex_b.to_facts(),
            record_checked=True,  # by `_record_is_plain`
        )


class Accepted(_Strict):
    """Body of a 202 reply."""

    id: str
    status: DisclosureStatus


class AgreementRef(_Strict):
    """An agreement id with its version."""

    id: str
    version: int


class Event(BaseModel):
    """One step in a disclosure's timeline."""

    model_config = ConfigDict(extra="allow", frozen=True)
    at: datetime
    type: str


class ReceiptView(_Strict):
    """The verified receipt of a disclosure."""

    id: str
    status: Literal["received", "rejected"]
    reason: str | None = None
    received_at: datetime
    kid: str | None = None


class RefusedFieldView(_Strict):
    """A permitted field whose value was refused: never sent, never echoed."""

    path: str = Field(description="Field path in the data dictionary's form")
    code: Literal["type_mismatch", "too_long", "not_in_code_list"] = Field(
        description="type_mismatch: not the dictionary's type; too_long: over the field's "
        "maximum length (refused, not truncated); not_in_code_list: not one of the coded "
        "field's codes"
    )


class DisclosureView(_Strict):
    """Body of GET /v1/disclosures/{id}."""

    id: str
    status: DisclosureStatus
    agreement: AgreementRef
    partner: str
    purpose: str
    fields_sent: list[str]
    fields_removed: list[str]
    fields_refused: list[RefusedFieldView] = Field(
        default_factory=list,
        description="Permitted fields whose values were removed for their type or length "
        "(each is in fields_removed too)",
    )
    reasons: list[str] = Field(default_factory=list)
    events: list[Event]
    receipt: ReceiptView | None

    @classmethod
    def of(cls, report: DisclosureReport) -> DisclosureView:
        """The contract's body for one disclosure report."""
        found, receipt = report.disclosure, report.receipt
        return cls(
            id=found.id,
            status=found.status.value,
            agreement=AgreementRef(id=found.agreement_id, version=found.agreement_version),
            partner=found.partner_id,
            purpose=found.purpose,
            fields_sent=list(found.fields_sent),
            fields_removed=list(found.fields_removed),
            fields_refused=[RefusedFieldView.model_validate(r) for r in found.fields_refused],
            reasons=list(found.decision_reasons),
            events=[Event(at=e.at, type=e.type, **dict(e.detail)) for e in report.events],
            receipt=(
                ReceiptView(
                    id=receipt.receipt_id,
                    status="received" if receipt.status == "received" else "rejected",
                    reason=receipt.reason,
                    received_at=receipt.received_at,
                    kid=receipt.verified_kid,
                )
                if receipt is not None
                else None
            ),
        )


class ReceiptAccepted(_Strict):
    """Body of a 200 reply to POST /v1/receipts."""

    receipt_id: str
    message_id: str
    status: DisclosureStatus
    duplicate: bool = False


class FieldError(_Strict):
    """One invalid field in a 422 problem."""

    field: str
    code: str
    message: str


class Problem(_Strict):
    """RFC 9457 problem details, with Gatehouse's stable `code` and `reasons`."""

    type: str
    title: str
    status: int
    code: str
    detail: str | None = None
    reasons: list[str] | None = None
    errors: list[FieldError] | None = None
    id: str | None = Field(None, description="The recorded disclosure, for a policy refusal")


class Health(_Strict):
    """Body of /healthz and /readyz."""

    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)
