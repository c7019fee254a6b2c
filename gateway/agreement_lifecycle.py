"""An agreement's life after it is applied: status changes by an administrator, and what is due.

Pure functions of stored agreements, partner keys and the clock, used by `gateway-admin
agreements suspend|resume|terminate|due`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from agreements.model import AgreementStatus
from gateway.errors import GatewayError, NotFoundError
from gateway.partner_certs import PartnerCertificate
from gateway.partner_keys import PartnerKey
from gateway.store.agreements_repo import StoredAgreement

StatusAction = Literal["suspend", "resume", "terminate"]
DueKind = Literal[
    "effective_to",
    "review_due",
    "partner_key_missing",
    "partner_key_expiring",
    "partner_cert_missing",
    "partner_cert_expiring",
    "council_smime_expiring",
]

_ACTIVE, _SUSPENDED, _DRAFT = (
    AgreementStatus.ACTIVE,
    AgreementStatus.SUSPENDED,
    AgreementStatus.DRAFT,
)
TRANSITIONS: Mapping[StatusAction, tuple[frozenset[str], AgreementStatus]] = {
    "suspend": (frozenset({_ACTIVE}), AgreementStatus.SUSPENDED),
    "resume": (frozenset({_SUSPENDED}), AgreementStatus.ACTIVE),
    "terminate": (frozenset({_ACTIVE, _SUSPENDED, _DRAFT}), AgreementStatus.TERMINATED),
}
LIVE = frozenset({_ACTIVE, _SUSPENDED, _DRAFT})  # statuses whose dates and keys still matter


class AgreementNotFoundError(NotFoundError):
    """No agreement (or no such version of it) is stored."""

    code = "agreement_not_found"


class AgreementStatusError(GatewayError):
    """The status change is not allowed from the agreement's current status."""

    code = "agreement_status_transition_invalid"


def next_status(action: StatusAction, current: str) -> AgreementStatus:
    """The status after `action`, or a refusal naming what is allowed from where."""
    allowed, target = TRANSITIONS[action]
    if current not in allowed:
        froms = " or ".join(sorted(allowed))
        raise AgreementStatusError(
            f"cannot {action} an agreement that is {current} (only one that is {froms})"
        )
    return target


@dataclass(frozen=True, slots=True)
class DueItem:
    """One thing an information governance officer must act on, and by when."""

    kind: DueKind
    subject: str  # agreement id, or partner id for key items
    due: date | None
    days_left: int | None  # negative: overdue
    status: str
    detail: str

    @property
    def overdue(self) -> bool:
        """The date has passed (or there is nothing to wait for: a missing key)."""
        return self.days_left is None or self.days_left < 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "kind": self.kind,
            "subject": self.subject,
            "due": self.due.isoformat() if self.due else None,
            "days_left": self.days_left,
            "overdue": self.overdue,
            "status": self.status,
            "detail": self.detail,
        }


def due_report(
    agreements: Iterable[StoredAgreement],
    enc_keys: Mapping[str, Sequence[PartnerKey]],
    *,
    now: datetime,
    days: int,
    email_certs: Mapping[str, Sequence[PartnerCertificate]] | None = None,
    council_smime_until: datetime | None = None,
) -> list[DueItem]:
    """Agreements ending or due review within `days` (or past it), partners without a key
    (or, by email, whose S/MIME certificates lapse), the council's S/MIME certificate.

    `email_certs`: the email partners, each with its certificates; they need no JWK.
    """
    email_certs = email_certs or {}
    today, items = now.date(), []
    live = [a for a in agreements if a.status in LIVE]
    for agreement in live:
        dates: tuple[tuple[DueKind, date | None], ...] = (
            ("effective_to", agreement.effective_to),
            ("review_due", agreement.review_due),
        )
        for kind, when in dates:
            if when is not None and (when - today).days <= days:
                left = (when - today).days
                detail = _date_detail(kind, left)
                items.append(DueItem(kind, agreement.id, when, left, agreement.status, detail))
    for partner_id in sorted({a.partner_id for a in live}):
        if partner_id in email_certs:
            items += _cert_items(partner_id, email_certs[partner_id], now=now, days=days)
        else:
            items += _key_items(partner_id, enc_keys.get(partner_id, ()), now=now, days=days)
    if council_smime_until is not None and council_smime_until <= now + timedelta(days=days):
        left = (council_smime_until.date() - now.date()).days
        detail = "the council's S/MIME certificate expires: install a new one (keys smime)"
        items.append(
            DueItem(
                "council_smime_expiring", "council", council_smime_until.date(), left, "", detail
            )
        )
    return sorted(
        items,
        key=lambda i: (i.days_left if i.days_left is not None else -(10**6), i.subject, i.kind),
    )


def _date_detail(kind: str, left: int) -> str:
    what = "ends" if kind == "effective_to" else "review due"
    if left < 0:
        return f"{what} {-left} day(s) ago"
    return f"{what} today" if left == 0 else f"{what} in {left} day(s)"


def _key_items(
    partner_id: str, keys: Sequence[PartnerKey], *, now: datetime, days: int
) -> list[DueItem]:
    usable = [k for k in keys if k.use == "enc" and k.usable_at(now)]
    if not usable:
        detail = "no valid encryption key: disclosures to it are denied"
        return [DueItem("partner_key_missing", partner_id, None, None, "", detail)]
    horizon = now + timedelta(days=days)
    if all(k.not_after is not None and k.not_after <= horizon for k in usable):
        last = max(k.not_after for k in usable if k.not_after is not None)
        left = (last.date() - now.date()).days
        detail = f"every encryption key expires within {days} days; register a new one"
        return [DueItem("partner_key_expiring", partner_id, last.date(), left, "", detail)]
    return []


def _cert_items(
    partner_id: str, certs: Sequence[PartnerCertificate], *, now: datetime, days: int
) -> list[DueItem]:
    """An S/MIME partner whose certificates are all revoked or lapse soon (TLS-only: none)."""
    if not certs:
        return []
    usable = [c for c in certs if c.usable_at(now)]
    if not usable:
        detail = "no usable S/MIME certificate: email to it waits until one is added"
        return [DueItem("partner_cert_missing", partner_id, None, None, "", detail)]
    last = max(c.not_after for c in usable)
    if last <= now + timedelta(days=days):
        left = (last.date() - now.date()).days
        detail = f"every S/MIME certificate expires within {days} days; register a new one"
        return [DueItem("partner_cert_expiring", partner_id, last.date(), left, "", detail)]
    return []
