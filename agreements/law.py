"""The legal vocabulary of an agreement: UK GDPR articles, DPA 2018 conditions, gateways."""

from __future__ import annotations

import enum


class Article6(enum.StrEnum):
    """UK GDPR Article 6(1) lawful basis (`f` is not available to a public authority's tasks)."""

    CONSENT = "a"
    CONTRACT = "b"
    LEGAL_OBLIGATION = "c"
    VITAL_INTERESTS = "d"
    PUBLIC_TASK = "e"
    LEGITIMATE_INTERESTS = "f"


class Article9(enum.StrEnum):
    """UK GDPR Article 9(2) condition for special category data."""

    EXPLICIT_CONSENT = "a"
    EMPLOYMENT_SOCIAL_PROTECTION = "b"
    VITAL_INTERESTS = "c"
    LEGAL_CLAIMS = "f"
    SUBSTANTIAL_PUBLIC_INTEREST = "g"
    HEALTH_OR_SOCIAL_CARE = "h"
    PUBLIC_HEALTH = "i"
    ARCHIVING_RESEARCH_STATISTICS = "j"


class Schedule1Condition(enum.StrEnum):
    """DPA 2018 Schedule 1 conditions (Part 1, Part 2 substantial public interest, Part 3)."""

    EMPLOYMENT_SOCIAL_PROTECTION = "sch1_p1"
    HEALTH_OR_SOCIAL_CARE = "sch1_p2"
    PUBLIC_HEALTH = "sch1_p3"
    RESEARCH = "sch1_p4"
    STATUTORY_PURPOSES = "sch1_p6"
    ADMINISTRATION_OF_JUSTICE = "sch1_p7"
    EQUALITY_OF_OPPORTUNITY = "sch1_p8"
    PREVENTING_UNLAWFUL_ACTS = "sch1_p10"
    PROTECTING_THE_PUBLIC = "sch1_p11"
    REGULATORY_REQUIREMENTS = "sch1_p12"
    PREVENTING_FRAUD = "sch1_p14"
    DISABILITY_SUPPORT = "sch1_p16"
    COUNSELLING = "sch1_p17"
    SAFEGUARDING = "sch1_p18"
    ECONOMIC_WELLBEING = "sch1_p19"
    CONSENT = "sch1_p29"
    VITAL_INTERESTS = "sch1_p30"
    LEGAL_CLAIMS = "sch1_p33"
    PART_2_EXTENDED = "sch1_p36"


class Article10Route(enum.StrEnum):
    """How criminal offence data is authorised: official authority, or any Schedule 1 condition.

    DPA 2018 s10(5): Article 10 is met by any condition in Schedule 1 Part 1, 2 or 3, so the
    health and social care (para 2) and public health (para 3) conditions serve too.
    """

    OFFICIAL_AUTHORITY = "official_authority"
    EMPLOYMENT_SOCIAL_PROTECTION = "sch1_p1"
    HEALTH_OR_SOCIAL_CARE = "sch1_p2"
    PUBLIC_HEALTH = "sch1_p3"
    RESEARCH = "sch1_p4"
    STATUTORY_PURPOSES = "sch1_p6"
    ADMINISTRATION_OF_JUSTICE = "sch1_p7"
    EQUALITY_OF_OPPORTUNITY = "sch1_p8"
    PREVENTING_UNLAWFUL_ACTS = "sch1_p10"
    PROTECTING_THE_PUBLIC = "sch1_p11"
    REGULATORY_REQUIREMENTS = "sch1_p12"
    PREVENTING_FRAUD = "sch1_p14"
    DISABILITY_SUPPORT = "sch1_p16"
    COUNSELLING = "sch1_p17"
    SAFEGUARDING = "sch1_p18"
    ECONOMIC_WELLBEING = "sch1_p19"
    CONSENT = "sch1_p29"
    VITAL_INTERESTS = "sch1_p30"
    LEGAL_CLAIMS = "sch1_p33"
    PART_2_EXTENDED = "sch1_p36"


class Exemption(enum.StrEnum):
    """DPA 2018 Schedule 2 Part 1 provisions a police or DWP disclosure relies on.

    Para 2 (crime and taxation) permits a voluntary disclosure, never compels it; para 5
    (required by law) covers a disclosure the partner can require, on Article 6(1)(c).
    """

    CRIME_AND_TAXATION = "sch2_p2"
    REQUIRED_BY_LAW = "sch2_p5"


class StatutoryGateway(enum.StrEnum):
    """Statutory gateways that give the council the power or duty to share."""

    CHILDREN_ACT_1989_S17 = "ca89_s17"
    CHILDREN_ACT_1989_S22 = "ca89_s22"
    CHILDREN_ACT_1989_S22C = "ca89_s22c"
    CHILDREN_ACT_1989_S7 = "ca89_s7"
    CHILDREN_ACT_1989_S27 = "ca89_s27"
    CHILDREN_ACT_1989_S42 = "ca89_s42"
    CHILDREN_ACT_1989_S47 = "ca89_s47"
    CHILDREN_ACT_1989_S83 = "ca89_s83"
    CHILDREN_ACT_2004_S10 = "ca04_s10"
    CHILDREN_ACT_2004_S11 = "ca04_s11"
    CARE_ACT_2014_S6 = "care_act_s6"
    CARE_ACT_2014_S7 = "care_act_s7"
    CARE_ACT_2014_S37 = "care_act_s37"
    CARE_ACT_2014_S42 = "care_act_s42"
    CARE_ACT_2014_S45 = "care_act_s45"
    CRIME_AND_DISORDER_ACT_1998_S37 = "cda98_s37"
    CRIME_AND_DISORDER_ACT_1998_S115 = "cda98_s115"
    CRIMINAL_JUSTICE_ACT_2003_S325 = "cja03_s325"
    HEALTH_AND_SOCIAL_CARE_ACT_2008_S64 = "hsca08_s64"
    HEALTH_AND_SOCIAL_CARE_ACT_2012_S251B = "hsca12_s251b"
    NHS_ACT_2006_S82 = "nhsa06_s82"
    SAFEGUARDING_VULNERABLE_GROUPS_ACT_2006_S39 = "svga06_s39"
    SOCIAL_SECURITY_ADMINISTRATION_ACT_1992_S109B = "ssaa92_s109b"
    SOCIAL_SECURITY_ADMINISTRATION_ACT_1992_S110A = "ssaa92_s110a"
    DIGITAL_ECONOMY_ACT_2017_S56 = "dea17_s56"
    EDUCATION_AND_INSPECTIONS_ACT_2006_S136 = "eia06_s136"
    MENTAL_HEALTH_ACT_1983_S117 = "mha83_s117"


SCHEDULE_1_FOR_ARTICLE_9: dict[Article9, frozenset[Schedule1Condition]] = {
    Article9.EMPLOYMENT_SOCIAL_PROTECTION: frozenset(
        {Schedule1Condition.EMPLOYMENT_SOCIAL_PROTECTION}
    ),
    Article9.HEALTH_OR_SOCIAL_CARE: frozenset({Schedule1Condition.HEALTH_OR_SOCIAL_CARE}),
    Article9.PUBLIC_HEALTH: frozenset({Schedule1Condition.PUBLIC_HEALTH}),
    Article9.ARCHIVING_RESEARCH_STATISTICS: frozenset({Schedule1Condition.RESEARCH}),
    Article9.SUBSTANTIAL_PUBLIC_INTEREST: frozenset(
        {
            Schedule1Condition.STATUTORY_PURPOSES,
            Schedule1Condition.ADMINISTRATION_OF_JUSTICE,
            Schedule1Condition.EQUALITY_OF_OPPORTUNITY,
            Schedule1Condition.PREVENTING_UNLAWFUL_ACTS,
            Schedule1Condition.PROTECTING_THE_PUBLIC,
            Schedule1Condition.REGULATORY_REQUIREMENTS,
            Schedule1Condition.PREVENTING_FRAUD,
            Schedule1Condition.DISABILITY_SUPPORT,
            Schedule1Condition.COUNSELLING,
            Schedule1Condition.SAFEGUARDING,
            Schedule1Condition.ECONOMIC_WELLBEING,
        }
    ),
}
"""Article 9(2) conditions that need a Schedule 1 condition (DPA 2018 s10), and which fit."""

NEEDS_POLICY_DOCUMENT: frozenset[str] = frozenset(
    {"sch1_p1"} | set(SCHEDULE_1_FOR_ARTICLE_9[Article9.SUBSTANTIAL_PUBLIC_INTEREST]) | {"sch1_p36"}
)
"""Conditions that need an appropriate policy document (DPA 2018 Schedule 1 paras 1, 5, 38)."""


IMPOSES_OBLIGATION: frozenset[StatutoryGateway] = frozenset(
    {
        StatutoryGateway.CHILDREN_ACT_1989_S7,  # a welfare report the family court asks for
        StatutoryGateway.CHILDREN_ACT_1989_S42,  # Cafcass officers' right to the records
        StatutoryGateway.CHILDREN_ACT_1989_S83,  # returns the Secretary of State requires
        StatutoryGateway.CARE_ACT_2014_S37,  # the first authority's duty when an adult moves
        StatutoryGateway.CARE_ACT_2014_S45,  # a safeguarding adults board's request
        StatutoryGateway.CRIMINAL_JUSTICE_ACT_2003_S325,  # duty to co-operate with MAPPA
        StatutoryGateway.HEALTH_AND_SOCIAL_CARE_ACT_2008_S64,  # CQC's power to require
        StatutoryGateway.EDUCATION_AND_INSPECTIONS_ACT_2006_S136,  # Ofsted's inspection access
        StatutoryGateway.HEALTH_AND_SOCIAL_CARE_ACT_2012_S251B,  # duty to share for care
        StatutoryGateway.SAFEGUARDING_VULNERABLE_GROUPS_ACT_2006_S39,  # duty to refer to DBS
        StatutoryGateway.SOCIAL_SECURITY_ADMINISTRATION_ACT_1992_S109B,  # DWP's power to require
    }
)
"""Gateways that impose an obligation to disclose: what Article 6(1)(c) must name."""

PARTNER_CAN_REQUIRE: frozenset[StatutoryGateway] = frozenset(
    {
        StatutoryGateway.HEALTH_AND_SOCIAL_CARE_ACT_2008_S64,
        StatutoryGateway.SOCIAL_SECURITY_ADMINISTRATION_ACT_1992_S109B,
        StatutoryGateway.CARE_ACT_2014_S45,
    }
)
"""Powers by which the recipient can require the data: what a Schedule 2 para 5 reliance names."""

NOT_A_DISCLOSURE_POWER: frozenset[StatutoryGateway] = frozenset(
    {StatutoryGateway.SOCIAL_SECURITY_ADMINISTRATION_ACT_1992_S110A}
)
"""Powers of the council's own investigators to obtain information, never a gateway to disclose."""
