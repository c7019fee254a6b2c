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
