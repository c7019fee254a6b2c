"""One agreement as an entry of the record of processing activities (UK GDPR Article 30(1)).

Pure: what the agreement says, in the terms an auditor reads. The counts of what was actually
disclosed are added by the caller, which reads them from the store.
"""

from __future__ import annotations

from dataclasses import dataclass

from agreements import plain_words
from agreements.dictionary import lookup
from agreements.model import Agreement, Partner, Purpose, Transform

CHILDREN = frozenset(
    {
        Purpose.SAFEGUARDING_CHILDREN,
        Purpose.LOOKED_AFTER_CHILDREN_HEALTH,
        Purpose.PLACEMENT_TRANSFER,
    }
)
ADULTS = frozenset(
    {Purpose.SAFEGUARDING_ADULTS, Purpose.CARE_ASSESSMENT, Purpose.HOSPITAL_DISCHARGE}
)
NO_TRANSFERS = "none recorded: the recipient is named in the agreement; no transfer outside the UK"


@dataclass(frozen=True, slots=True)
class ProcessingEntry:
    """What the record of processing says about one data sharing agreement."""

    agreement: str
    version: int
    title: str
    status: str
    partner: str
    partner_name: str
    partner_kind: str
    partner_role: str
    ico_registration: str | None
    purposes: tuple[str, ...]
    data_categories: tuple[str, ...]
    special_category: bool
    criminal_offence: bool
    data_subjects: tuple[str, ...]
    recipients: tuple[str, ...]
    lawful_basis: str
    article_9: str | None
    schedule_1: tuple[str, ...]
    article_10: tuple[str, ...]
    exemption: str | None
    appropriate_policy_document: str | None
    retention: str
    safeguards: tuple[str, ...]
    transfers: str
    dpia: str | None
    effective_from: str
    effective_to: str | None
    review_due: str


def processing_entry(agreement: Agreement, partner: Partner | None) -> ProcessingEntry:
    """The Article 30 entry for one agreement (its partner, if known, named in full)."""
    sent = [lookup(r.path) for r in agreement.fields if r.transform != Transform.DROP]
    known = [d for d in sent if d is not None]
    basis = agreement.lawful_basis
    partner_name = partner.name if partner else agreement.partner
    return ProcessingEntry(
        agreement=agreement.id,
        version=agreement.version,
        title=agreement.title,
        status=str(agreement.status),
        partner=agreement.partner,
        partner_name=partner_name,
        partner_kind=str(partner.kind) if partner else "",
        partner_role=str(agreement.partner_role),
        ico_registration=partner.ico_registration if partner else None,
        purposes=tuple(str(p) for p in agreement.purposes),
        data_categories=tuple(sorted({str(d.category) for d in known})),
        special_category=any(d.special_category for d in known),
        criminal_offence=any(d.criminal_offence for d in known),
        data_subjects=_subjects(
            agreement, known_third_party=[d.path for d in known if d.third_party]
        ),
        recipients=(partner_name, *agreement.onward_recipients),
        lawful_basis=plain_words.lawful_basis(basis),
        article_9=str(basis.article_9) if basis.article_9 else None,
        schedule_1=tuple(str(c) for c in basis.schedule_1),
        article_10=tuple(str(r) for r in basis.article_10),
        exemption=str(basis.exemption) if basis.exemption else None,
        appropriate_policy_document=basis.appropriate_policy_document,
        retention=f"{plain_words.retention(agreement.retention)} after each disclosure",
        safeguards=_safeguards(agreement, partner),
        transfers=NO_TRANSFERS,
        dpia=agreement.references.dpia,
        effective_from=agreement.effective_from.isoformat(),
        effective_to=agreement.effective_to.isoformat() if agreement.effective_to else None,
        review_due=agreement.review_due.isoformat(),
    )


def _subjects(agreement: Agreement, *, known_third_party: list[str]) -> tuple[str, ...]:
    subjects = []
    if CHILDREN.intersection(agreement.purposes):
        subjects.append("children and young people")
    if ADULTS.intersection(agreement.purposes):
        subjects.append("adults with care and support needs")
    if not subjects:
        subjects.append("people supported by Children and Adults services")
    if any(path.startswith("relatives") for path in known_third_party):
        subjects.append("relatives and carers")
    if any(path.startswith("household") for path in known_third_party):
        subjects.append("household members")
    return tuple(subjects)


def _safeguards(agreement: Agreement, partner: Partner | None) -> tuple[str, ...]:
    permitted = sum(1 for r in agreement.fields if r.transform != Transform.DROP)
    found = [
        f"only {permitted} permitted field paths leave; everything else is removed",
        "signed by the council and encrypted to the recipient's key (nested JWT)",
        "delivery proved by the recipient's signed receipt",
        f"recipient {plain_words.ONWARD.get(agreement.onward_sharing, 'onward sharing')}",
        f"national data opt-out: {agreement.national_data_opt_out}",
    ]
    if partner is not None:
        found.insert(3, f"delivered over {partner.channel.type}")
    if agreement.needs_approval:
        found.append("each disclosure approved by a named officer, never the requester")
    transforms = sorted({str(r.transform) for r in agreement.fields} - {"keep", "drop"})
    if transforms:
        found.append(f"values reduced before sending: {', '.join(transforms)}")
    return tuple(found)
