"""The data dictionary: every field path a source record may carry, with its category and flags.

Drawn from the council's privacy notice. Paths use dots for objects and `[*]` for list items
(`household[*].name`). Only leaf paths are listed; an agreement's field rules name leaf paths.

Flags follow what a value reveals, not where it sits: DoLS, personal care, category of need and
EHCP reveal health (special category); abuse category and safeguarding concerns reveal alleged
offences (criminal offence data); every free-text field may hold anything, so it is treated
like case notes (special category and criminal offence data, sent only for named purposes).
Each leaf has a type, a string a maximum length and a code field its closed list of codes:
minimisation refuses any other value.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from agreements.code_lists import CODE_LISTS
from agreements.vocabulary import SubjectIdentifier


class Category(enum.StrEnum):
    """The privacy notice's data categories."""

    IDENTITY = "identity"
    HOUSEHOLD = "household"
    RELATIVES_AND_CARERS = "relatives_and_carers"
    LEGAL_STATUS = "legal_status"
    ACCOMMODATION = "accommodation"
    NEEDS = "needs"
    COMMUNICATION = "communication"
    BELIEFS = "beliefs"
    HEALTH = "health"
    SERVICES = "services"
    SOCIAL_CARE = "social_care"
    FINANCE = "finance"
    GOALS = "goals"
    RISKS = "risks"
    EDUCATION = "education"
    EMPLOYMENT = "employment"
    YOUTH_OFFENDING = "youth_offending"
    CASE_NOTES = "case_notes"


class ValueType(enum.StrEnum):
    """The type of a leaf value."""

    STRING = "string"
    DATE = "date"
    NUMBER = "number"
    BOOLEAN = "boolean"
    CODE = "code"  # one of a closed list of codes (agreements/code_lists.py)


@dataclass(frozen=True, slots=True)
class FieldDefinition:
    """One field path: its category and what makes it sensitive."""

    path: str
    category: Category
    type: ValueType
    special_category: bool = False  # UK GDPR Article 9
    criminal_offence: bool = False  # UK GDPR Article 10
    third_party: bool = False  # about someone other than the subject
    free_text: bool = False  # narrative: highest risk, only with an explicit rule
    person_name: bool = False  # a person's name (the `initials` transform applies)
    description: str = ""
    max_length: int | None = None  # strings only: a longer value is refused, never truncated
    codes: frozenset[str] = frozenset()  # code fields only: the closed list of codes

    @property
    def health_or_care(self) -> bool:
        """Reveals the person's health or the care they receive (patient data for the opt-out)."""
        if self.category in _CARE_CATEGORIES or self.path.startswith(_CARE_SERVICES):
            return True
        return self.special_category and self.category not in _NOT_HEALTH

    def to_dict(self) -> dict[str, str | bool | int | list[str] | None]:
        """A JSON-able form for `gateway-admin dictionary --json`."""
        return {
            "path": self.path,
            "category": str(self.category),
            "type": str(self.type),
            "special_category": self.special_category,
            "criminal_offence": self.criminal_offence,
            "third_party": self.third_party,
            "free_text": self.free_text,
            "person_name": self.person_name,
            "max_length": self.max_length,
            "codes": sorted(self.codes) if self.codes else None,
            "description": self.description,
        }


_CARE_CATEGORIES = frozenset({Category.HEALTH, Category.NEEDS, Category.SOCIAL_CARE})
_CARE_SERVICES = ("services.health", "services.social_care", "services.family_support")
_NOT_HEALTH = frozenset({Category.IDENTITY, Category.BELIEFS})  # ethnicity, religion

PATH_PATTERN = re.compile(r"[a-z][a-z0-9_]*(\[\*\])*(\.[a-z][a-z0-9_]*(\[\*\])*)*")

C = Category
S, D, N, B = ValueType.STRING, ValueType.DATE, ValueType.NUMBER, ValueType.BOOLEAN
K = ValueType.CODE
_SPECIAL = {"special_category": True}
_CRIMINAL = {"criminal_offence": True}
_THIRD = {"third_party": True}
_FREE = {"free_text": True, "special_category": True, "criminal_offence": True}
_NAME = {"person_name": True}

# (path, category, type, flags, description)
_ENTRIES: tuple[tuple[str, Category, ValueType, dict[str, bool], str], ...] = (
    # identity
    ("identity.name", C.IDENTITY, S, _NAME, "Full name"),
    ("identity.preferred_name", C.IDENTITY, S, _NAME, "Name the person prefers to be called"),
    ("identity.date_of_birth", C.IDENTITY, D, {}, "Date of birth"),
    ("identity.gender", C.IDENTITY, S, {}, "Gender as recorded"),
    ("identity.marital_status", C.IDENTITY, S, {}, "Marital or civil partnership status"),
    ("identity.nhs_number", C.IDENTITY, S, {}, "NHS number"),
    ("identity.local_id", C.IDENTITY, S, {}, "Council person id (case-management system)"),
    ("identity.ni_number", C.IDENTITY, S, {}, "National Insurance number"),
    ("identity.ethnicity", C.IDENTITY, S, _SPECIAL, "Ethnicity (census code)"),
    ("identity.phone", C.IDENTITY, S, {}, "Telephone number"),
    ("identity.email", C.IDENTITY, S, {}, "Email address"),
    ("identity.address.line1", C.IDENTITY, S, {}, "Address, first line"),
    ("identity.address.line2", C.IDENTITY, S, {}, "Address, second line"),
    ("identity.address.town", C.IDENTITY, S, {}, "Address, town"),
    ("identity.address.postcode", C.IDENTITY, S, {}, "Address, postcode"),
    ("identity.previous_addresses[*].line1", C.IDENTITY, S, {}, "Previous address, first line"),
    ("identity.previous_addresses[*].town", C.IDENTITY, S, {}, "Previous address, town"),
    ("identity.previous_addresses[*].postcode", C.IDENTITY, S, {}, "Previous address, postcode"),
    ("identity.previous_addresses[*].moved_out", C.IDENTITY, D, {}, "Date moved out"),
    # household members (third parties)
    ("household[*].name", C.HOUSEHOLD, S, {**_THIRD, **_NAME}, "Household member's name"),
    ("household[*].relationship", C.HOUSEHOLD, S, _THIRD, "Relationship to the subject"),
    ("household[*].date_of_birth", C.HOUSEHOLD, D, _THIRD, "Household member's date of birth"),
    # close relatives and carers (third parties)
    (
        "relatives[*].name",
        C.RELATIVES_AND_CARERS,
        S,
        {**_THIRD, **_NAME},
        "Relative's or carer's name",
    ),
    ("relatives[*].relationship", C.RELATIVES_AND_CARERS, S, _THIRD, "Relationship"),
    ("relatives[*].phone", C.RELATIVES_AND_CARERS, S, _THIRD, "Relative's telephone"),
    ("relatives[*].email", C.RELATIVES_AND_CARERS, S, _THIRD, "Relative's email"),
    ("relatives[*].is_carer", C.RELATIVES_AND_CARERS, B, _THIRD, "Provides unpaid care"),
    ("relatives[*].is_next_of_kin", C.RELATIVES_AND_CARERS, B, _THIRD, "Named next of kin"),
    (
        "relatives[*].support_provided",
        C.RELATIVES_AND_CARERS,
        S,
        {**_THIRD, **_FREE},
        "Support the carer provides",
    ),
    # legal status
    ("legal.immigration_status", C.LEGAL_STATUS, S, {}, "Immigration status"),
    ("legal.power_of_attorney.type", C.LEGAL_STATUS, S, {}, "Lasting power of attorney type"),
    (
        "legal.power_of_attorney.holder_name",
        C.LEGAL_STATUS,
        S,
        {**_THIRD, **_NAME},
        "Attorney's name",
    ),
    ("legal.court_orders[*].type", C.LEGAL_STATUS, S, {}, "Court order type"),
    ("legal.court_orders[*].made_on", C.LEGAL_STATUS, D, {}, "Date the order was made"),
    ("legal.dols_authorised", C.LEGAL_STATUS, B, _SPECIAL, "Deprivation of liberty authorised"),
    ("legal.has_capacity_concerns", C.LEGAL_STATUS, B, _SPECIAL, "Mental capacity in question"),
    # accommodation
    ("accommodation.type", C.ACCOMMODATION, S, {}, "Type of accommodation"),
    ("accommodation.layout", C.ACCOMMODATION, S, {}, "Layout (stairs, rooms)"),
    ("accommodation.alarms_fitted", C.ACCOMMODATION, B, {}, "Community alarm fitted"),
    ("accommodation.key_safe", C.ACCOMMODATION, B, {}, "Key safe present (never its code)"),
    ("accommodation.accessibility", C.ACCOMMODATION, S, {}, "Access and adaptations"),
    ("accommodation.access_notes", C.ACCOMMODATION, S, _FREE, "How carers get in"),
    # needs
    ("needs.personal_care", C.NEEDS, S, _SPECIAL, "Personal care needs"),
    ("needs.eating_and_drinking", C.NEEDS, S, _SPECIAL, "Eating and drinking needs"),
    ("needs.practical_tasks", C.NEEDS, S, {}, "Practical tasks (shopping, cleaning)"),
    ("needs.mobility", C.NEEDS, S, _SPECIAL, "Mobility needs"),
    ("needs.physical_wellbeing", C.NEEDS, S, _SPECIAL, "Physical wellbeing"),
    ("needs.emotional_wellbeing", C.NEEDS, S, _SPECIAL, "Emotional wellbeing"),
    ("needs.parenting", C.NEEDS, S, {}, "Parenting support needs"),
    ("needs.care_hours_weekly", C.NEEDS, N, {}, "Planned care hours per week"),
    # communication
    ("communication.first_language", C.COMMUNICATION, S, {}, "First language"),
    ("communication.interpreter_required", C.COMMUNICATION, B, {}, "Needs an interpreter"),
    ("communication.translator_required", C.COMMUNICATION, B, {}, "Needs written translation"),
    ("communication.preferred_method", C.COMMUNICATION, S, {}, "Preferred way to communicate"),
    ("communication.sensory_needs", C.COMMUNICATION, S, _SPECIAL, "Hearing or sight needs"),
    # beliefs
    ("beliefs.religion", C.BELIEFS, S, _SPECIAL, "Religion or belief"),
    ("beliefs.cultural_needs", C.BELIEFS, S, _SPECIAL, "Cultural or spiritual needs"),
    ("beliefs.dietary_requirements", C.BELIEFS, S, _SPECIAL, "Faith or cultural diet"),
    # health
    ("health.medical_history", C.HEALTH, S, _FREE, "Medical history"),
    ("health.diagnoses[*].code", C.HEALTH, S, _SPECIAL, "Diagnosis code (SNOMED CT / ICD-10)"),
    ("health.diagnoses[*].description", C.HEALTH, S, _SPECIAL, "Diagnosis"),
    ("health.diagnoses[*].diagnosed_on", C.HEALTH, D, _SPECIAL, "Date diagnosed"),
    ("health.medications[*].name", C.HEALTH, S, _SPECIAL, "Medication"),
    ("health.medications[*].dose", C.HEALTH, S, _SPECIAL, "Dose"),
    ("health.allergies[*]", C.HEALTH, S, _SPECIAL, "Allergy"),
    ("health.disabilities[*]", C.HEALTH, S, _SPECIAL, "Disability"),
    ("health.gp_practice_code", C.HEALTH, S, {}, "Registered GP practice (ODS code)"),
    ("health.mental_health.status", C.HEALTH, S, _SPECIAL, "Mental health status"),
    ("health.mental_health.detained", C.HEALTH, B, _SPECIAL, "Detained (Mental Health Act)"),
    ("health.substance_misuse", C.HEALTH, S, _SPECIAL, "Substance misuse"),
    ("health.immunisations_up_to_date", C.HEALTH, B, _SPECIAL, "Immunisations up to date"),
    ("health.last_health_assessment", C.HEALTH, D, _SPECIAL, "Last statutory health assessment"),
    ("health.last_dental_check", C.HEALTH, D, _SPECIAL, "Last dental check"),
    ("health.risks[*]", C.RISKS, S, _SPECIAL, "Health risk (falls, pressure sores)"),
    # services received
    ("services.health[*].name", C.SERVICES, S, _SPECIAL, "Health service received"),
    ("services.health[*].started_on", C.SERVICES, D, _SPECIAL, "Health service start"),
    ("services.social_care[*].name", C.SERVICES, S, {}, "Social care service received"),
    ("services.social_care[*].provider", C.SERVICES, S, {}, "Provider of the service"),
    ("services.social_care[*].started_on", C.SERVICES, D, {}, "Service start"),
    ("services.education[*].name", C.SERVICES, S, {}, "Education service received"),
    ("services.family_support[*].name", C.SERVICES, S, {}, "Family support received"),
    # children's and adults' social care (statutory returns, discharge)
    ("social_care.referral_date", C.SOCIAL_CARE, D, {}, "Date of referral"),
    ("social_care.referral_source", C.SOCIAL_CARE, K, {}, "Referral source (census code)"),
    ("social_care.category_of_need", C.SOCIAL_CARE, K, _SPECIAL, "Child in need category (N0-N9)"),
    ("social_care.assessment_date", C.SOCIAL_CARE, D, {}, "Date of assessment"),
    ("social_care.assessment_factors[*]", C.SOCIAL_CARE, S, _SPECIAL, "Assessment factors"),
    ("social_care.s47_enquiry_date", C.SOCIAL_CARE, D, {}, "Section 47 enquiry start"),
    ("social_care.cp_plan.start_date", C.SOCIAL_CARE, D, {}, "Child protection plan start"),
    ("social_care.cp_plan.category", C.SOCIAL_CARE, K, _CRIMINAL, "Category of abuse"),
    ("social_care.looked_after.start_date", C.SOCIAL_CARE, D, {}, "Became looked after"),
    ("social_care.looked_after.legal_status", C.SOCIAL_CARE, K, {}, "Legal status (C2, V2)"),
    ("social_care.looked_after.placement_type", C.SOCIAL_CARE, K, {}, "Placement type"),
    ("social_care.primary_support_reason", C.SOCIAL_CARE, K, _SPECIAL, "Adult support reason"),
    ("social_care.allocated_worker", C.SOCIAL_CARE, S, _NAME, "Allocated social worker"),
    ("social_care.discharge.hospital_ward", C.SOCIAL_CARE, S, {}, "Ward awaiting discharge"),
    ("social_care.discharge.expected_date", C.SOCIAL_CARE, D, {}, "Expected discharge date"),
    ("social_care.discharge.pathway", C.SOCIAL_CARE, N, {}, "Discharge pathway (0-3)"),
    ("social_care.safeguarding[*].type", C.SOCIAL_CARE, K, _CRIMINAL, "Safeguarding concern type"),
    ("social_care.safeguarding[*].raised_on", C.SOCIAL_CARE, D, {}, "Concern raised"),
    ("social_care.safeguarding[*].outcome", C.SOCIAL_CARE, S, _CRIMINAL, "Enquiry outcome"),
    # finance (charging, direct payments, benefits)
    ("finance.benefits[*].type", C.FINANCE, S, {}, "Benefit received"),
    ("finance.benefits[*].weekly_amount", C.FINANCE, N, {}, "Benefit amount per week"),
    ("finance.direct_payment.weekly_amount", C.FINANCE, N, {}, "Direct payment per week"),
    (
        "finance.direct_payment.account_holder",
        C.FINANCE,
        S,
        {**_THIRD, **_NAME},
        "Direct payment holder",
    ),
    ("finance.assessed_contribution_weekly", C.FINANCE, N, {}, "Assessed charge per week"),
    # goals and risks
    ("goals[*].description", C.GOALS, S, _FREE, "Outcome the person wants"),
    ("goals[*].target_date", C.GOALS, D, {}, "Target date"),
    ("risks[*].type", C.RISKS, S, {}, "Risk type"),
    ("risks[*].level", C.RISKS, S, {}, "Risk level"),
    ("risks[*].description", C.RISKS, S, _FREE, "Risk narrative"),
    # education, employment and training
    ("education.upn", C.EDUCATION, S, {}, "Unique pupil number"),
    ("education.setting_name", C.EDUCATION, S, {}, "School or setting"),
    ("education.setting_urn", C.EDUCATION, S, {}, "Setting unique reference number"),
    ("education.year_group", C.EDUCATION, N, {}, "National curriculum year"),
    ("education.attendance_percent", C.EDUCATION, N, {}, "Attendance this year"),
    ("education.attainment[*].subject", C.EDUCATION, S, {}, "Examination subject"),
    ("education.attainment[*].grade", C.EDUCATION, S, {}, "Grade"),
    ("education.attainment[*].year", C.EDUCATION, N, {}, "Year of the examination"),
    ("education.sen_support", C.EDUCATION, K, _SPECIAL, "SEN provision (N, K, E)"),
    ("education.sen_primary_need", C.EDUCATION, K, _SPECIAL, "Primary special need"),
    ("education.ehcp", C.EDUCATION, B, _SPECIAL, "Has an education, health and care plan"),
    ("education.exclusions[*].type", C.EDUCATION, S, {}, "Exclusion type"),
    ("education.exclusions[*].start_date", C.EDUCATION, D, {}, "Exclusion start"),
    ("education.welfare_concerns", C.EDUCATION, S, _FREE, "Education welfare concerns"),
    ("education.legal_intervention", C.EDUCATION, S, {}, "Attendance legal intervention"),
    ("education.missing_from_education", C.EDUCATION, B, {}, "Child missing education"),
    ("employment.status", C.EMPLOYMENT, S, {}, "Employment, education or training"),
    ("employment.training", C.EMPLOYMENT, S, {}, "Training undertaken"),
    # youth offending (criminal offence data)
    ("youth_offending.convictions[*].offence", C.YOUTH_OFFENDING, S, _CRIMINAL, "Offence"),
    ("youth_offending.convictions[*].date", C.YOUTH_OFFENDING, D, _CRIMINAL, "Conviction date"),
    ("youth_offending.convictions[*].outcome", C.YOUTH_OFFENDING, S, _CRIMINAL, "Sentence"),
    ("youth_offending.interventions[*].type", C.YOUTH_OFFENDING, S, _CRIMINAL, "Intervention"),
    ("youth_offending.interventions[*].started_on", C.YOUTH_OFFENDING, D, _CRIMINAL, "Start"),
    ("youth_offending.risk_of_serious_harm", C.YOUTH_OFFENDING, K, _CRIMINAL, "RoSH level"),
    # case notes (free text: highest risk)
    ("case_notes[*].date", C.CASE_NOTES, D, {}, "Date of the note"),
    ("case_notes[*].kind", C.CASE_NOTES, S, {}, "Conversation, letter or report"),
    ("case_notes[*].author", C.CASE_NOTES, S, _NAME, "Author (staff member)"),
    (
        "case_notes[*].text",
        C.CASE_NOTES,
        S,
        _FREE,
        "Narrative; may hold anything",
    ),
)


STRING_MAX_LENGTH = 200  # a name, a line of an address, a short description
FREE_TEXT_MAX_LENGTH = 10_000
_MAX_LENGTH: Mapping[str, int] = {
    "identity.nhs_number": 10,
    "identity.ni_number": 9,
    "identity.local_id": 64,
    "identity.gender": 30,
    "identity.ethnicity": 20,
    "identity.phone": 20,
    "identity.email": 254,
    "identity.address.postcode": 8,
    "identity.previous_addresses[*].postcode": 8,
    "relatives[*].phone": 20,
    "relatives[*].email": 254,
    "health.diagnoses[*].code": 20,
    "health.gp_practice_code": 10,
    "social_care.assessment_factors[*]": 10,
    "education.upn": 13,
    "education.setting_urn": 8,
}


def _max_length(path: str, value_type: ValueType, flags: Mapping[str, bool]) -> int | None:
    if value_type is not ValueType.STRING:
        return None
    default = FREE_TEXT_MAX_LENGTH if flags.get("free_text") else STRING_MAX_LENGTH
    return _MAX_LENGTH.get(path, default)


def _build() -> Mapping[str, FieldDefinition]:
    table: dict[str, FieldDefinition] = {}
    for path, category, value_type, flags, description in _ENTRIES:
        assert PATH_PATTERN.fullmatch(path), path
        assert path not in table, path
        codes = CODE_LISTS.get(path, frozenset())
        assert bool(codes) == (value_type is ValueType.CODE), path
        table[path] = FieldDefinition(
            path,
            category,
            value_type,
            description=description,
            max_length=_max_length(path, value_type, flags),
            codes=codes,
            **flags,
        )
    assert set(_MAX_LENGTH) <= set(table), set(_MAX_LENGTH) - set(table)
    assert set(CODE_LISTS) <= set(table), set(CODE_LISTS) - set(table)
    return MappingProxyType(table)


DICTIONARY: Mapping[str, FieldDefinition] = _build()
"""Every known leaf field path, read-only."""
_SUBJECT_PATHS = frozenset(f"subject.{name}" for name in SubjectIdentifier)


def lookup(path: str) -> FieldDefinition | None:
    """The definition of a leaf path, or None: an unknown path is never sent."""
    return DICTIONARY.get(path)


def entries() -> tuple[FieldDefinition, ...]:
    """Every definition, in the dictionary's order (grouped by category)."""
    return tuple(DICTIONARY.values())


UNKNOWN = "<unknown>"
"""What is recorded in place of a client's own name for something not in the catalog."""


def recordable_paths(paths: Iterable[str]) -> tuple[tuple[str, ...], int]:
    """The paths fit to record: dictionary paths (and `subject.<identifier>`) as they are, every
    other one folded into one `<unknown>` and counted. A client's own key names are free text:
    they never reach the audit log or the database, and cannot make an entry grow."""
    known: list[str] = []
    unknown = 0
    for path in paths:
        if path in DICTIONARY or path in _SUBJECT_PATHS:
            known.append(path)
        else:
            unknown += 1
    return (*known, UNKNOWN) if unknown else tuple(known), unknown
