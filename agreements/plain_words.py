"""The codes of agreements in plain English, for people: purposes, lawful bases, retention.

Used by the record of processing, the register of agreements and the subject access report. A
code without words here is shown as the code itself, so a new code never breaks a report.
"""

from __future__ import annotations

from collections.abc import Mapping

from agreements.dictionary import Category
from agreements.model import LawfulBasis, OnwardSharing, Period, Purpose

PURPOSES: Mapping[str, str] = {
    Purpose.DIRECT_CARE: "to give you health or social care",
    Purpose.SAFEGUARDING_CHILDREN: "to keep a child safe from harm",
    Purpose.SAFEGUARDING_ADULTS: "to keep an adult at risk safe from abuse or neglect",
    Purpose.LOOKED_AFTER_CHILDREN_HEALTH: "for the health care of a child in the council's care",
    Purpose.CARE_ASSESSMENT: "to assess and arrange care and support",
    Purpose.HOSPITAL_DISCHARGE: "to arrange care when leaving hospital",
    Purpose.CRIME_PREVENTION: "to prevent or detect crime",
    Purpose.LAW_ENFORCEMENT_REQUEST: "to answer a request from the police about a crime",
    Purpose.FRAUD_PREVENTION: "to prevent or detect fraud",
    Purpose.STATUTORY_RETURN: "for a return to government that the law requires",
    Purpose.COMMISSIONING: "to plan and buy health and care services",
    Purpose.PLANNING: "to plan services",
    Purpose.RESEARCH: "for research",
    Purpose.PLACEMENT_TRANSFER: "to move a child's care to another council",
    Purpose.REGULATORY_INSPECTION: "for an inspection by a regulator",
    Purpose.EMERGENCY: "in an emergency",
}

ARTICLE_6: Mapping[str, str] = {
    "a": "your consent (UK GDPR Article 6(1)(a))",
    "b": "a contract with you (UK GDPR Article 6(1)(b))",
    "c": "a legal obligation on the council (UK GDPR Article 6(1)(c))",
    "d": "protecting someone's life (UK GDPR Article 6(1)(d))",
    "e": "the council's public tasks set by law (UK GDPR Article 6(1)(e))",
    "f": "legitimate interests (UK GDPR Article 6(1)(f))",
}

ARTICLE_9: Mapping[str, str] = {
    "a": "your explicit consent (Article 9(2)(a))",
    "b": "social protection law (Article 9(2)(b))",
    "c": "protecting someone's life (Article 9(2)(c))",
    "f": "legal claims (Article 9(2)(f))",
    "g": "substantial public interest (Article 9(2)(g))",
    "h": "health or social care (Article 9(2)(h))",
    "i": "public health (Article 9(2)(i))",
    "j": "archiving, research or statistics (Article 9(2)(j))",
}

ONWARD: Mapping[str, str] = {
    OnwardSharing.PROHIBITED: "may not pass it on",
    OnwardSharing.LISTED: "may pass it on only to the recipients listed",
    OnwardSharing.WITH_CONSENT: "may pass it on only with your consent",
}

CATEGORIES: Mapping[str, str] = {
    Category.IDENTITY: "identity and contact details",
    Category.HOUSEHOLD: "household members",
    Category.RELATIVES_AND_CARERS: "relatives and carers",
    Category.LEGAL_STATUS: "legal status and court orders",
    Category.ACCOMMODATION: "accommodation",
    Category.NEEDS: "care and support needs",
    Category.COMMUNICATION: "communication needs",
    Category.BELIEFS: "beliefs",
    Category.HEALTH: "health",
    Category.SERVICES: "services received",
    Category.SOCIAL_CARE: "social care",
    Category.FINANCE: "finances and benefits",
    Category.GOALS: "goals",
    Category.RISKS: "risks",
    Category.EDUCATION: "education",
    Category.EMPLOYMENT: "employment and training",
    Category.YOUTH_OFFENDING: "offending",
    Category.CASE_NOTES: "case notes",
}


def purpose(code: str) -> str:
    """A purpose in words."""
    return PURPOSES.get(code, code)


def lawful_basis(basis: LawfulBasis) -> str:
    """The lawful basis in one sentence: Article 6, Article 9, the law that gives the power."""
    words = ARTICLE_6.get(basis.article_6, f"Article 6(1)({basis.article_6})")
    if basis.article_9 is not None:
        words += "; for sensitive data, " + ARTICLE_9.get(
            basis.article_9, f"Article 9(2)({basis.article_9})"
        )
    if basis.gateways:
        words += "; under " + ", ".join(gateway_name(g) for g in basis.gateways)
    return words


def gateway_name(code: str) -> str:
    """A statutory gateway code (`ca04_s11`) as the Act and section."""
    acts = {
        "ca89": "Children Act 1989",
        "ca04": "Children Act 2004",
        "care_act": "Care Act 2014",
        "cda98": "Crime and Disorder Act 1998",
        "cja03": "Criminal Justice Act 2003",
        "hsca08": "Health and Social Care Act 2008",
        "hsca12": "Health and Social Care Act 2012",
        "nhsa06": "NHS Act 2006",
        "svga06": "Safeguarding Vulnerable Groups Act 2006",
        "ssaa92": "Social Security Administration Act 1992",
        "mha83": "Mental Health Act 1983",
        "dea17": "Digital Economy Act 2017",
        "eia06": "Education and Inspections Act 2006",
    }
    act, _, section = code.rpartition("_")
    return f"{acts[act]} {section}" if act in acts else code


def retention(period: Period) -> str:
    """A retention period in words: `P75Y` -> 75 years."""
    parts = [
        f"{count} {unit}{'' if count == 1 else 's'}"
        for count, unit in ((period.years, "year"), (period.months, "month"), (period.days, "day"))
        if count
    ]
    return " and ".join(parts)
