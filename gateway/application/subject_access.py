"""The subject access report in plain English: who received data about the person, and why.

It supplements the council's subject access response: Gatehouse keeps what was shared, with
whom, under which agreement, and for how long the recipient keeps it, but never the record
values (it cannot read the sealed envelopes), so the response gives the data itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from agreements import plain_words
from agreements.dictionary import lookup
from agreements.model import Agreement
from gateway import audit
from gateway.application.admin_ports import StorePort
from gateway.protection import Protection
from gateway.store import agreements_repo, partners_repo
from gateway.subject_report import SubjectDisclosure, subject_report

SHARED = frozenset({"queued", "dispatched", "receipted"})
STATUS_WORDS = {
    "queued": "being sent",
    "dispatched": "sent, awaiting their receipt",
    "receipted": "received by them",
    "failed": "could not be delivered, so they did not receive it",
    "denied": "not sent: the council's sharing rules did not allow it",
    "rejected": "not sent: an officer decided against it",
    "pending_approval": "not sent yet: awaiting an officer's decision",
}
RIGHTS = (
    "You can ask for a copy of the information the council holds about you (right of access).",
    "You can ask the council to correct information that is wrong (right to rectification); "
    "the council then tells everyone it shared that information with.",
    "You can ask the council to delete information, or to restrict how it is used, in some "
    "circumstances (rights to erasure and to restriction).",
    "You can object to the council using your information for its public tasks (right to "
    "object); the council then stops unless it has compelling grounds.",
    "Where a disclosure rests on your consent, you can withdraw that consent at any time.",
)
COMPLAINT = (
    "If you are unhappy with how the council has used your information, please contact the "
    "council's Data Protection Officer first. You can also complain to the Information "
    "Commissioner's Office (ICO): ico.org.uk/make-a-complaint, telephone 0303 123 1113, "
    "Wycliffe House, Water Lane, Wilmslow, Cheshire SK9 5AF."
)
SUPPLEMENT_NOTE = (
    "This report lists the times the council's secure exchange gateway shared information about "
    "you with another organisation. It names the kinds of information sent, not the "
    "information itself: the council's response to your request gives you that."
)


@dataclass(frozen=True, slots=True)
class SharedWith:
    """One disclosure about the person, in words a member of the public reads."""

    date: str
    recipient: str
    recipient_id: str
    purpose: str
    lawful_basis: str
    information: tuple[str, ...]  # categories of data, in words
    fields: tuple[str, ...]  # field names, for the council's officer
    outcome: str
    shared: bool
    kept_until: str
    kept_for: str
    onward_sharing: str
    source: str
    agreement: str
    disclosure_id: str


@dataclass(frozen=True, slots=True)
class SubjectAccessReport:
    """The whole report: what was shared, the person's rights, how to complain."""

    generated_at: str
    about: str
    note: str
    shared: tuple[SharedWith, ...]
    rights: tuple[str, ...] = RIGHTS
    complaint: str = COMPLAINT

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


async def subject_access_report(
    store: StorePort,
    protection: Protection,
    *,
    nhs_number: str | None = None,
    local_id: str | None = None,
    actor: audit.Actor,
    at: datetime,
) -> SubjectAccessReport:
    """Find every disclosure about the person (audited) and describe each in plain English."""
    found = await subject_report(
        store, protection, nhs_number=nhs_number, local_id=local_id, actor=actor, at=at
    )
    agreements, names = await _policy(store, found)
    about = "NHS number" if nhs_number else "local person id"
    return SubjectAccessReport(
        generated_at=at.isoformat(timespec="seconds"),
        about=f"the person with the {about} given in the request",
        note=SUPPLEMENT_NOTE,
        shared=tuple(
            _described(line, agreements.get((line.agreement_id, line.agreement_version)), names)
            for line in found
        ),
    )


async def _policy(
    store: StorePort, found: list[SubjectDisclosure]
) -> tuple[dict[tuple[str, int], Agreement], dict[str, str]]:
    """The agreement versions the disclosures went under, and every partner's name."""
    agreements: dict[tuple[str, int], Agreement] = {}
    async with store.read() as conn:
        for key in {(line.agreement_id, line.agreement_version) for line in found}:
            stored = await agreements_repo.get(conn, *key)
            if stored is None:
                continue
            try:
                agreements[key] = Agreement.model_validate(dict(stored.document))
            except ValidationError:
                continue  # described from the disclosure record alone
        names = {p.id: p.name for p in await partners_repo.all_partners(conn)}
    return agreements, names


def _described(
    line: SubjectDisclosure, agreement: Agreement | None, names: dict[str, str]
) -> SharedWith:
    categories = {d.category for d in map(lookup, line.fields_sent) if d is not None}
    kept_for = (
        f"up to {plain_words.retention(agreement.retention)} after it was sent"
        if agreement
        else "until the date shown"
    )
    return SharedWith(
        date=line.date.date().isoformat(),
        recipient=names.get(line.partner, line.partner),
        recipient_id=line.partner,
        purpose=plain_words.purpose(line.purpose),
        lawful_basis=(
            plain_words.lawful_basis(agreement.lawful_basis) if agreement else line.lawful_basis
        ),
        information=tuple(sorted(plain_words.CATEGORIES.get(c, str(c)) for c in categories)),
        fields=line.fields_sent,
        outcome=STATUS_WORDS.get(line.status, line.status),
        shared=line.status in SHARED,
        kept_until=line.retain_until.date().isoformat(),
        kept_for=kept_for,
        onward_sharing=(
            f"They {plain_words.ONWARD.get(agreement.onward_sharing, 'may not pass it on')}"
            + (f": {', '.join(agreement.onward_recipients)}" if agreement.onward_recipients else "")
            if agreement
            else ""
        ),
        source=f"the council's case records, sent from its {line.client} system",
        agreement=f"{line.agreement_id} version {line.agreement_version}",
        disclosure_id=line.id,
    )
