"""The vocabulary of agreements: purposes, partner kinds, tiers, statuses, transforms, ..."""

from __future__ import annotations

import enum


class Purpose(enum.StrEnum):
    """Purpose codes a disclosure may be made for."""

    DIRECT_CARE = "direct_care"
    SAFEGUARDING_CHILDREN = "safeguarding_children"
    SAFEGUARDING_ADULTS = "safeguarding_adults"
    LOOKED_AFTER_CHILDREN_HEALTH = "looked_after_children_health"
    CARE_ASSESSMENT = "care_assessment"
    HOSPITAL_DISCHARGE = "hospital_discharge"
    CRIME_PREVENTION = "crime_prevention"
    LAW_ENFORCEMENT_REQUEST = "law_enforcement_request"
    FRAUD_PREVENTION = "fraud_prevention"
    STATUTORY_RETURN = "statutory_return"
    COMMISSIONING = "commissioning"
    PLANNING = "planning"
    RESEARCH = "research"
    PLACEMENT_TRANSFER = "placement_transfer"
    REGULATORY_INSPECTION = "regulatory_inspection"
    EMERGENCY = "emergency"


class PartnerKind(enum.StrEnum):
    """What sort of organisation a partner is."""

    NHS_TRUST = "nhs_trust"
    ICB = "icb"
    GP_PRACTICE = "gp_practice"
    CARE_PROVIDER = "care_provider"
    VOLUNTARY_SECTOR = "voluntary_sector"
    POLICE = "police"
    PROBATION = "probation"
    YOUTH_JUSTICE = "youth_justice"
    DWP = "dwp"
    LOCAL_AUTHORITY = "local_authority"
    SCHOOL = "school"
    GOVERNMENT_DEPARTMENT = "government_department"
    REGULATOR = "regulator"
    SAFEGUARDING_BOARD = "safeguarding_board"


class Tier(enum.StrEnum):
    """Framework (umbrella), purpose-specific, or one-off (a single request) agreement."""

    FRAMEWORK = "framework"
    PURPOSE = "purpose"
    ONE_OFF = "one_off"


class AgreementStatus(enum.StrEnum):
    """Lifecycle status; only `active` agreements permit disclosures."""

    DRAFT = "draft"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    EXPIRED = "expired"
    TERMINATED = "terminated"


class Transform(enum.StrEnum):
    """What happens to a permitted field's value on the way out."""

    KEEP = "keep"
    YEAR_ONLY = "year_only"
    AGE_BAND = "age_band"
    POSTCODE_DISTRICT = "postcode_district"
    PSEUDONYMISE = "pseudonymise"
    INITIALS = "initials"
    DROP = "drop"


class OptOutBasis(enum.StrEnum):
    """Whether the national data opt-out applies, or the exemption relied on."""

    APPLIES = "applies"
    DIRECT_CARE = "direct_care"
    CONSENT = "consent"
    LEGAL_REQUIREMENT = "legal_requirement"
    PUBLIC_INTEREST = "public_interest"
    ANONYMISED = "anonymised"
    NOT_PATIENT_DATA = "not_patient_data"


class ChannelType(enum.StrEnum):
    """How a partner receives disclosures."""

    WEBHOOK = "webhook"
    MESH = "mesh"
    EMAIL = "email"
    SFTP = "sftp"


class PartyRole(enum.StrEnum):
    """The partner's role under UK GDPR for this agreement."""

    CONTROLLER = "controller"
    JOINT_CONTROLLER = "joint_controller"
    PROCESSOR = "processor"


class ApprovalPolicy(enum.StrEnum):
    """Whether each disclosure needs a named officer's approval."""

    NONE = "none"
    REQUIRED = "required"


class OnwardSharing(enum.StrEnum):
    """What the partner may do with the data next (carried in every message)."""

    PROHIBITED = "prohibited"
    LISTED = "listed"
    WITH_CONSENT = "with_consent"


class SubjectIdentifier(enum.StrEnum):
    """Identifiers of the person a disclosure is about."""

    NHS_NUMBER = "nhs_number"
    LOCAL_ID = "local_id"
    UPN = "upn"
    NI_NUMBER = "ni_number"


# Purposes grouped by the rules that govern them (AGREEMENTS.md rules 9-11). Every purpose is
# in exactly one group, so a new purpose cannot be added without deciding which rules apply.
INDIVIDUAL_CARE: frozenset[Purpose] = frozenset(
    {
        Purpose.DIRECT_CARE,
        Purpose.CARE_ASSESSMENT,
        Purpose.HOSPITAL_DISCHARGE,
        Purpose.LOOKED_AFTER_CHILDREN_HEALTH,
        Purpose.PLACEMENT_TRANSFER,
        Purpose.EMERGENCY,
    }
)
BEYOND_INDIVIDUAL_CARE: frozenset[Purpose] = frozenset(
    {Purpose.PLANNING, Purpose.COMMISSIONING, Purpose.RESEARCH}
)
"""The closed list of purposes the national data opt-out applies to (never any other)."""
SAFEGUARDING: frozenset[Purpose] = frozenset(
    {Purpose.SAFEGUARDING_CHILDREN, Purpose.SAFEGUARDING_ADULTS}
)
LAW_ENFORCEMENT: frozenset[Purpose] = frozenset(
    {Purpose.CRIME_PREVENTION, Purpose.LAW_ENFORCEMENT_REQUEST, Purpose.FRAUD_PREVENTION}
)
LEGAL_REQUIREMENT: frozenset[Purpose] = frozenset(
    {Purpose.STATUTORY_RETURN, Purpose.REGULATORY_INSPECTION}
)
SCHEDULE_2_REQUESTS: frozenset[Purpose] = frozenset(
    {Purpose.LAW_ENFORCEMENT_REQUEST, Purpose.FRAUD_PREVENTION}
)
"""Requests decided case by case under DPA 2018 Schedule 2, whoever the partner is."""
STATUTORY_FUNCTIONS: frozenset[Purpose] = frozenset(Purpose) - {Purpose.DIRECT_CARE}
"""Purposes the council shares for only in exercising a statutory function, so never under a
contract with the person (Art 6(1)(b)); care the council arranges for a self-funder may be one."""

CASE_BY_CASE_KINDS: frozenset[PartnerKind] = frozenset({PartnerKind.POLICE, PartnerKind.DWP})
"""Partners whose every request outside safeguarding is approved case by case (rule 10)."""
COMPETENT_AUTHORITY_KINDS: frozenset[PartnerKind] = frozenset(
    {PartnerKind.POLICE, PartnerKind.PROBATION, PartnerKind.YOUTH_JUSTICE}
)
"""DPA 2018 Part 3 competent authorities (Schedule 7); DWP is one for its criminal
investigations only."""
LAW_ENFORCEMENT_RECIPIENTS: frozenset[PartnerKind] = frozenset(
    {
        PartnerKind.POLICE,
        PartnerKind.PROBATION,
        PartnerKind.YOUTH_JUSTICE,
        PartnerKind.DWP,
        PartnerKind.LOCAL_AUTHORITY,
        PartnerKind.GOVERNMENT_DEPARTMENT,
    }
)
RESEARCH_RECIPIENTS: frozenset[PartnerKind] = frozenset(
    {
        PartnerKind.NHS_TRUST,
        PartnerKind.ICB,
        PartnerKind.LOCAL_AUTHORITY,
        PartnerKind.GOVERNMENT_DEPARTMENT,
    }
)
RECIPIENTS_FOR: dict[Purpose, frozenset[PartnerKind]] = {
    **dict.fromkeys(LAW_ENFORCEMENT, LAW_ENFORCEMENT_RECIPIENTS),
    Purpose.RESEARCH: RESEARCH_RECIPIENTS,
}
"""Partner kinds that can lawfully receive for a purpose, where not every kind can."""


def opt_out_purpose(purpose: str) -> bool:
    """True for a purpose the national data opt-out applies to (beyond individual care)."""
    return purpose in BEYOND_INDIVIDUAL_CARE


def recipient_under_part_3(kind: PartnerKind, purpose: str) -> bool:
    """True when the partner receives as a competent authority (DPA 2018 Part 3)."""
    if kind in COMPETENT_AUTHORITY_KINDS:
        return True
    return kind == PartnerKind.DWP and purpose in LAW_ENFORCEMENT
