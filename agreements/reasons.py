"""Stable reason codes of policy decisions, each with a one-line meaning (the docs list them)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType


class Reason(enum.StrEnum):
    """Why a disclosure was refused, held for approval, or flagged."""

    AGREEMENT_NOT_FOUND = "agreement_not_found"
    AGREEMENT_NOT_ACTIVE = "agreement_not_active"
    AGREEMENT_NOT_YET_EFFECTIVE = "agreement_not_yet_effective"
    AGREEMENT_EXPIRED = "agreement_expired"
    AGREEMENT_REVIEW_OVERDUE = "agreement_review_overdue"
    UNKNOWN_PURPOSE = "unknown_purpose"
    PURPOSE_NOT_PERMITTED = "purpose_not_permitted"
    CLIENT_NOT_AUTHORISED = "client_not_authorised"
    SUBJECT_IDENTIFIER_MISSING = "subject_identifier_missing"
    NATIONAL_DATA_OPT_OUT = "national_data_opt_out"
    PARTNER_KEY_MISSING = "partner_key_missing"
    PARTNER_CHANNEL_UNAVAILABLE = "partner_channel_unavailable"
    APPROVAL_REQUIRED = "approval_required"
    APPROVAL_FACTS_MISSING = "approval_facts_missing"


MEANINGS: Mapping[Reason, str] = MappingProxyType(
    {
        Reason.AGREEMENT_NOT_FOUND: "No agreement with this id is in the catalog (default deny).",
        Reason.AGREEMENT_NOT_ACTIVE: (
            "The agreement's status is not `active` (draft, suspended, expired or terminated)."
        ),
        Reason.AGREEMENT_NOT_YET_EFFECTIVE: "Today is before the agreement's `effective_from`.",
        Reason.AGREEMENT_EXPIRED: "Today is after the agreement's `effective_to`.",
        Reason.AGREEMENT_REVIEW_OVERDUE: (
            "The agreement is past `review_due`: a warning for up to 90 days, a denial after."
        ),
        Reason.UNKNOWN_PURPOSE: "The purpose is not a purpose code Gatehouse knows.",
        Reason.PURPOSE_NOT_PERMITTED: "The purpose is not one of the agreement's purposes.",
        Reason.CLIENT_NOT_AUTHORISED: (
            "The calling system is not authorised to disclose under this agreement."
        ),
        Reason.SUBJECT_IDENTIFIER_MISSING: (
            "The request carries none of the subject identifiers the agreement uses (or no NHS "
            "number where the national data opt-out must be checked)."
        ),
        Reason.NATIONAL_DATA_OPT_OUT: (
            "The subject has opted out, and the opt-out applies: the agreement declares it and "
            "the purpose goes beyond individual care (planning, commissioning, research)."
        ),
        Reason.PARTNER_KEY_MISSING: (
            "The partner has no valid (current, unrevoked) encryption key to seal for."
        ),
        Reason.PARTNER_CHANNEL_UNAVAILABLE: (
            "The partner receives by a channel this deployment has no settings for (MESH "
            "without GATEWAY_MESH_MAILBOX, secure email); refused now rather than retried "
            "until it fails."
        ),
        Reason.APPROVAL_REQUIRED: (
            "A one-off, police, DWP or Schedule 2 request: held until a named officer approves it."
        ),
        Reason.APPROVAL_FACTS_MISSING: (
            "An approval is required but the request lacks the Annex B facts (requester, role, "
            "authorising officer, offence or prejudice, necessity)."
        ),
    }
)


def meaning(code: str) -> str:
    """The one-line meaning of a reason code, for tables and problem details."""
    try:
        return MEANINGS[Reason(code)]
    except ValueError:
        return "Unknown reason code."
