"""Closed lists of codes a dictionary field may hold (national returns' own code sets).

A code field takes exactly one of its list's codes: anything else, however plausible, is
refused by minimisation (`not_in_code_list`) rather than sent, since free text typed into a
coded field can say anything. The lists follow the DfE children in need census, the SSDA903
looked-after children return, the school census, the NHS Digital SALT return and the Care Act
safeguarding adults collection; codes are compared exactly (case and spelling).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

CP_PLAN_CATEGORY = frozenset({"neglect", "physical", "emotional", "sexual", "multiple"})
"""Initial category of abuse of a child protection plan (CIN census NEG, PHY, EMO, SAB, MUL)."""

CATEGORY_OF_NEED = frozenset({f"N{n}" for n in range(10)})
"""Child in need primary need code (CIN census N0 not stated, N1 abuse or neglect .. N9)."""

REFERRAL_SOURCE = frozenset(
    {
        *("1A", "1B", "1C", "1D", "2A", "2B"),
        *("3A", "3B", "3C", "3D", "3E", "3F"),
        *("4", "5A", "5B", "5C", "5D", "6", "7", "8", "9", "10"),
    }
)
"""Source of a referral to children's social care (CIN census)."""

LOOKED_AFTER_LEGAL_STATUS = frozenset(
    {"C1", "C2", "D1", "E1", "J1", "J2", "J3", "L1", "L2", "L3", "V2", "V3", "V4"}
)
"""Legal status of a looked-after child (SSDA903)."""

PLACEMENT_TYPE = frozenset(
    {
        *("A3", "A4", "A5", "A6", "H5", "K1", "K2", "P1", "P2", "P3"),
        *("R1", "R2", "R3", "R5", "S1", "T0", "T1", "T2", "T3", "T4"),
        *("U1", "U2", "U3", "U4", "U5", "U6", "Z1"),
    }
)
"""Placement type of a looked-after child (SSDA903)."""

SEN_PROVISION = frozenset({"N", "K", "E"})
"""Special educational needs provision (school census: none, SEN support, EHC plan)."""

SEN_PRIMARY_NEED = frozenset(
    {"SPLD", "MLD", "SLD", "PMLD", "SEMH", "SLCN", "HI", "VI", "MSI", "PD", "ASD", "OTH", "NSA"}
)
"""Primary type of special educational need (school census)."""

PRIMARY_SUPPORT_REASON = frozenset(
    {
        "physical_support",
        "sensory_support",
        "memory_and_cognition",
        "learning_disability",
        "mental_health",
        "social_support",
    }
)
"""An adult's primary support reason (NHS Digital SALT return)."""

SAFEGUARDING_TYPE = frozenset(
    {
        "physical",
        "sexual",
        "emotional",
        "psychological",
        "financial",
        "neglect",
        "self_neglect",
        "discriminatory",
        "organisational",
        "domestic_abuse",
        "modern_slavery",
        "sexual_exploitation",
        "criminal_exploitation",
    }
)
"""Type of a safeguarding concern (Care Act safeguarding adults collection, with the
children's categories of abuse and exploitation)."""

RISK_OF_SERIOUS_HARM = frozenset({"low", "medium", "high", "very_high"})
"""Risk of serious harm level (youth justice AssetPlus)."""

CODE_LISTS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "social_care.cp_plan.category": CP_PLAN_CATEGORY,
        "social_care.category_of_need": CATEGORY_OF_NEED,
        "social_care.referral_source": REFERRAL_SOURCE,
        "social_care.looked_after.legal_status": LOOKED_AFTER_LEGAL_STATUS,
        "social_care.looked_after.placement_type": PLACEMENT_TYPE,
        "social_care.primary_support_reason": PRIMARY_SUPPORT_REASON,
        "social_care.safeguarding[*].type": SAFEGUARDING_TYPE,
        "education.sen_support": SEN_PROVISION,
        "education.sen_primary_need": SEN_PRIMARY_NEED,
        "youth_offending.risk_of_serious_harm": RISK_OF_SERIOUS_HARM,
    }
)
"""The code list of every coded field path (a path's type in the dictionary is `code`)."""
