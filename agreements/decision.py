"""The decision: may this disclosure go under this agreement, today, for this caller?

A pure function of its inputs. It collects every applicable reason rather than stopping at
the first, so a caller sees everything that must change.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date

from agreements.model import Agreement, AgreementStatus, OptOutBasis, Purpose
from agreements.reasons import Reason
from agreements.vocabulary import opt_out_purpose

REVIEW_GRACE_DAYS = 90
_PURPOSES = frozenset(str(purpose) for purpose in Purpose)


class Outcome(enum.StrEnum):
    """What happens to the disclosure."""

    ALLOWED = "allowed"
    NEEDS_APPROVAL = "needs_approval"
    DENIED = "denied"


@dataclass(frozen=True, slots=True)
class DisclosureRequest:
    """What the decision needs to know about one request (identifier names only, no values).

    `has_approval_facts`: the request carries the ICO Annex B facts (requester, role or rank,
    authorising officer, offence or prejudice, why the data is necessary).
    `approval_granted`: a named officer has approved this held request; decide again with it.
    """

    agreement_id: str
    purpose: str
    subject_identifiers: frozenset[str] = frozenset()
    has_approval_facts: bool = False
    approval_granted: bool = False


@dataclass(frozen=True, slots=True)
class DecisionContext:
    """The facts from outside the request: today, the caller's permissions, opt-out, keys.

    `deliverable_channels`: the channels whose settings this deployment holds; a partner on
    any other channel is refused now rather than retried until the delivery fails.
    """

    today: date
    client_agreements: frozenset[str]
    subject_opted_out: bool = False
    partner_has_valid_key: bool = True
    partner_channel: str | None = None
    deliverable_channels: frozenset[str] | None = None  # None: every channel can deliver


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome, every reason for it (stable codes), and warnings that do not block."""

    outcome: Outcome
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    agreement_id: str | None = None
    agreement_version: int | None = None
    approval_required: bool = field(default=False)

    @property
    def allowed(self) -> bool:
        """True when the disclosure may go now."""
        return self.outcome is Outcome.ALLOWED


def decide(
    request: DisclosureRequest, agreement: Agreement | None, context: DecisionContext
) -> Decision:
    """Decide one disclosure: allowed, needs approval, or denied, with every reason."""
    denials: list[str] = []
    if request.agreement_id not in context.client_agreements:
        denials.append(Reason.CLIENT_NOT_AUTHORISED)
    if request.purpose not in _PURPOSES:
        denials.append(Reason.UNKNOWN_PURPOSE)
    if agreement is None:
        codes = (Reason.AGREEMENT_NOT_FOUND, *denials)
        return Decision(Outcome.DENIED, tuple(str(code) for code in codes))
    if agreement.id != request.agreement_id:
        raise ValueError("the agreement passed is not the one the request names")

    warnings: list[str] = []
    denials.extend(_lifecycle(agreement, context.today, warnings))
    if request.purpose in _PURPOSES and request.purpose not in agreement.purposes:
        denials.append(Reason.PURPOSE_NOT_PERMITTED)
    denials.extend(_subject(request, agreement, context))
    if not context.partner_has_valid_key:
        denials.append(Reason.PARTNER_KEY_MISSING)

    held: list[str] = []
    if agreement.needs_approval and not request.approval_granted:
        held.append(Reason.APPROVAL_REQUIRED)
        if not request.has_approval_facts:
            denials.append(Reason.APPROVAL_FACTS_MISSING)
    channels = context.deliverable_channels
    if channels is not None and context.partner_channel not in channels:
        denials.append(Reason.PARTNER_CHANNEL_UNAVAILABLE)

    if denials:
        outcome = Outcome.DENIED
    elif held:
        outcome = Outcome.NEEDS_APPROVAL
    else:
        outcome = Outcome.ALLOWED
    return Decision(
        outcome,
        tuple(dict.fromkeys(str(code) for code in [*denials, *held])),
        tuple(str(code) for code in warnings),
        agreement.id,
        agreement.version,
        agreement.needs_approval,
    )


def _lifecycle(agreement: Agreement, today: date, warnings: list[str]) -> list[str]:
    """Status, effective dates and review: rule 1 of the agreements domain."""
    denials: list[str] = []
    if agreement.status != AgreementStatus.ACTIVE:
        denials.append(Reason.AGREEMENT_NOT_ACTIVE)
    if today < agreement.effective_from:
        denials.append(Reason.AGREEMENT_NOT_YET_EFFECTIVE)
    if agreement.effective_to is not None and today > agreement.effective_to:
        denials.append(Reason.AGREEMENT_EXPIRED)
    overdue = (today - agreement.review_due).days
    if overdue > REVIEW_GRACE_DAYS:
        denials.append(Reason.AGREEMENT_REVIEW_OVERDUE)
    elif overdue > 0:
        warnings.append(Reason.AGREEMENT_REVIEW_OVERDUE)
    return denials


def opt_out_applies(agreement: Agreement, purpose: str) -> bool:
    """The national data opt-out governs this request: declared, and a purpose beyond care.

    Judged per request purpose (AGREEMENTS.md rule 9): an agreement for direct care and
    planning checks the opt-out for planning only, never for the person's own care.
    """
    return agreement.national_data_opt_out == OptOutBasis.APPLIES and opt_out_purpose(purpose)


def _subject(
    request: DisclosureRequest, agreement: Agreement, context: DecisionContext
) -> list[str]:
    """Identifiers and the national data opt-out (checked by NHS number, used for nothing else)."""
    denials: list[str] = []
    present = request.subject_identifiers
    opt_out_applies_here = opt_out_applies(agreement, request.purpose)
    if not present.intersection(agreement.subject_identifiers) or (
        opt_out_applies_here and "nhs_number" not in present
    ):
        denials.append(Reason.SUBJECT_IDENTIFIER_MISSING)
    if opt_out_applies_here and context.subject_opted_out:
        denials.append(Reason.NATIONAL_DATA_OPT_OUT)
    return denials
