"""Who may decide a held disclosure, and what they may narrow it to (rule 14, four eyes).

A registered approver for the disclosure's agreement decides it, never the member of staff who
requested it. Staff identifiers are compared trimmed and case-insensitively, as the case systems
send them in `requested_by.user`. An approver may narrow the fields to part of the allowlist.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agreements.model import Agreement
from gateway.errors import GatewayError
from gateway.store.approvers_repo import StoredApprover

APPROVER_ROLES = ("caldicott_guardian", "dpo", "ig_manager")
MAX_STAFF_ID = 128  # as `requested_by.user` in the API


def staff_key(name: str) -> str:
    """A staff identifier as compared: trimmed, compatibility-normalised and case-folded."""
    return unicodedata.normalize("NFKC", name.strip()).casefold()


class ApproverNameInvalidError(GatewayError):
    """An approver's name is a staff identifier: one line, not blank, at most 128 characters."""

    code = "approver_name_invalid"


def approver_name(text: str) -> str:
    """The staff identifier as registered and recorded (trimmed), or ApproverNameInvalidError."""
    name = text.strip()
    too_long = len(staff_key(name)) > MAX_STAFF_ID  # normalising may lengthen it
    if not name or too_long or not name.isprintable():
        raise ApproverNameInvalidError(
            f"an approver's name is the staff identifier the case systems send: one line of "
            f"1 to {MAX_STAFF_ID} printable characters"
        )
    return name


@dataclass(frozen=True, slots=True)
class ApproverIdentity:
    """Who decides: the staff identifier they approve as, and the login that ran the command."""

    name: str
    login: str

    def __post_init__(self) -> None:
        approver_name(self.name)
        approver_name(self.login)


class DecisionRefusedError(GatewayError):
    """This person may not make this decision; nothing changed (the attempt is audited)."""

    code = "decision_refused"


class ApproverIsRequesterError(DecisionRefusedError):
    """The approver is the member of staff who requested the disclosure."""

    code = "approver_is_requester"


class ApproverNotRegisteredError(DecisionRefusedError):
    """The approver is not registered (`gateway-admin approvers add`)."""

    code = "approver_not_registered"


class ApproverNotForAgreementError(DecisionRefusedError):
    """The approver is registered, but not for this disclosure's agreement."""

    code = "approver_not_for_agreement"


class FieldsNotPermittedError(DecisionRefusedError):
    """The narrowing names a field outside the agreement's allowlist for the purpose."""

    code = "fields_not_permitted"


def approver_refusal(
    name: str, *, requested_by: str, agreement_id: str, registered: StoredApprover | None
) -> DecisionRefusedError | None:
    """Why `name` may not decide this disclosure, or None when they may."""
    if staff_key(name) == staff_key(requested_by):
        return ApproverIsRequesterError(
            f"{name.strip()!r} requested this disclosure and may not decide it (four eyes)"
        )
    if registered is None:
        return ApproverNotRegisteredError(
            f"{name.strip()!r} is not a registered approver (gateway-admin approvers add)"
        )
    if agreement_id not in registered.agreements:
        return ApproverNotForAgreementError(
            f"{registered.name!r} is not registered to approve under {agreement_id}"
        )
    return None


def granted_fields(
    requested: Sequence[str], allowlist: Iterable[str]
) -> tuple[str, ...] | FieldsNotPermittedError:
    """The approver's choice of fields, or why it is refused (names outside the allowlist)."""
    chosen = tuple(dict.fromkeys(path.strip() for path in requested if path.strip()))
    if not chosen:
        return FieldsNotPermittedError("--fields names no field")
    permitted = frozenset(allowlist)
    outside = [path for path in chosen if path not in permitted]
    if outside:
        return FieldsNotPermittedError(
            "not in the agreement's allowlist for this purpose: " + ", ".join(outside)
        )
    return chosen


def narrowed(agreement: Agreement, fields: Iterable[str]) -> Agreement:
    """The agreement with its field rules cut down to `fields` (for this one disclosure)."""
    keep = frozenset(fields)
    return agreement.model_copy(
        update={"fields": tuple(rule for rule in agreement.fields if rule.path in keep)}
    )
