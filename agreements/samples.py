"""Synthetic source records for the demo, tests and benchmarks (no real person's data).

NHS numbers are in the 999 range reserved for testing; names and addresses are invented.
"""

from __future__ import annotations

import copy
from typing import Any

_CHILD: dict[str, Any] = {
    "identity": {
        "name": "Jordan Example",
        "preferred_name": "Jo",
        "date_of_birth": "2014-06-09",
        "gender": "female",
        "nhs_number": "9990000018",
        "local_id": "MC-C-000123",
        "ethnicity": "WBRI",
        "address": {"line1": "1 Sample Street", "town": "Chatham", "postcode": "ME4 4ZZ"},
    },
    "household": [
        {"name": "Sam Example", "relationship": "mother", "date_of_birth": "1988-01-20"},
        {"name": "Riley Example", "relationship": "brother", "date_of_birth": "2017-03-02"},
    ],
    "relatives": [
        {"name": "Pat Example", "relationship": "grandmother", "phone": "01634 000000"},
    ],
    "legal": {"court_orders": [{"type": "interim care order", "made_on": "2026-09-01"}]},
    "communication": {"first_language": "English", "interpreter_required": False},
    "beliefs": {"religion": "none"},
    "health": {
        "diagnoses": [{"code": "35489007", "description": "depressive disorder"}],
        "allergies": ["penicillin"],
        "immunisations_up_to_date": True,
        "last_health_assessment": "2025-10-14",
        "last_dental_check": "2026-02-11",
        "gp_practice_code": "G82999",
        "mental_health": {"status": "CAMHS open case"},
    },
    "social_care": {
        "referral_date": "2026-08-03",
        "referral_source": "1A",
        "category_of_need": "N1",
        "assessment_date": "2026-08-20",
        "assessment_factors": ["2B", "3A"],
        "s47_enquiry_date": "2026-08-05",
        "cp_plan": {"start_date": "2026-08-25", "category": "neglect"},
        "looked_after": {
            "start_date": "2026-09-01",
            "legal_status": "C1",
            "placement_type": "U4",
        },
        "allocated_worker": "Social Worker Example",
        "safeguarding": [{"type": "neglect", "raised_on": "2026-08-03"}],
    },
    "education": {
        "upn": "A123456789012",
        "setting_name": "Example Academy",
        "year_group": 7,
        "attendance_percent": 81.5,
        "sen_support": "K",
        "sen_primary_need": "SEMH",
        "ehcp": False,
        "exclusions": [{"type": "fixed", "start_date": "2026-03-10"}],
    },
    "youth_offending": {
        "convictions": [{"offence": "criminal damage", "date": "2026-05-02", "outcome": "YRO"}],
        "interventions": [{"type": "referral order panel", "started_on": "2026-06-01"}],
        "risk_of_serious_harm": "low",
    },
    "risks": [{"type": "going missing", "level": "medium", "description": "Narrative example."}],
    "case_notes": [
        {
            "date": "2026-09-02",
            "kind": "conversation",
            "author": "Social Worker Example",
            "text": "Home visit; narrative text that only an explicit rule may send.",
        }
    ],
}

_ADULT: dict[str, Any] = {
    "identity": {
        "name": "Morgan Example",
        "date_of_birth": "1941-11-30",
        "gender": "male",
        "marital_status": "widowed",
        "nhs_number": "9990000026",
        "local_id": "MC-A-004567",
        "ni_number": "QQ123456C",
        "phone": "01634 111111",
        "ethnicity": "WBRI",
        "address": {
            "line1": "22 Example Road",
            "town": "Gillingham",
            "postcode": "ME7 1ZZ",
        },
        "previous_addresses": [
            {
                "line1": "5 Old Lane",
                "town": "Rochester",
                "postcode": "ME1 1ZZ",
                "moved_out": "2019-05-01",
            }
        ],
    },
    "household": [{"name": "Chris Example", "relationship": "lodger"}],
    "relatives": [
        {
            "name": "Dana Example",
            "relationship": "daughter",
            "phone": "07700 900000",
            "is_carer": True,
            "is_next_of_kin": True,
            "support_provided": "Shopping and medication prompts.",
        }
    ],
    "legal": {
        "power_of_attorney": {"type": "health and welfare", "holder_name": "Dana Example"},
        "dols_authorised": False,
        "has_capacity_concerns": True,
    },
    "accommodation": {
        "type": "bungalow",
        "layout": "level access",
        "alarms_fitted": True,
        "key_safe": True,
        "accessibility": "grab rails, ramp",
        "access_notes": "Key safe by the back door.",
    },
    "needs": {
        "personal_care": "help with washing and dressing",
        "eating_and_drinking": "soft diet",
        "practical_tasks": "shopping",
        "mobility": "walking frame; hoist for transfers",
        "physical_wellbeing": "frail",
        "emotional_wellbeing": "low mood since bereavement",
        "care_hours_weekly": 14,
    },
    "communication": {"first_language": "English", "sensory_needs": "hard of hearing"},
    "beliefs": {"religion": "Christian", "dietary_requirements": "none"},
    "health": {
        "diagnoses": [{"code": "26929004", "description": "Alzheimer's disease"}],
        "medications": [{"name": "donepezil", "dose": "10 mg"}],
        "allergies": [],
        "risks": ["falls"],
        "gp_practice_code": "G82999",
        "mental_health": {"status": "memory service", "detained": False},
    },
    "services": {
        "social_care": [
            {"name": "home care", "provider": "Medway Homecare", "started_on": "2024-02-05"}
        ],
        "health": [{"name": "community nursing", "started_on": "2025-01-10"}],
    },
    "social_care": {
        "assessment_date": "2026-10-02",
        "primary_support_reason": "memory_and_cognition",
        "allocated_worker": "Social Worker Example",
        "discharge": {
            "hospital_ward": "Example Ward",
            "expected_date": "2026-11-27",
            "pathway": 1,
        },
        "safeguarding": [{"type": "self_neglect", "raised_on": "2026-04-01", "outcome": "NFA"}],
    },
    "finance": {
        "benefits": [{"type": "attendance allowance", "weekly_amount": 108.55}],
        "direct_payment": {"weekly_amount": 230.0, "account_holder": "Dana Example"},
        "assessed_contribution_weekly": 64.2,
    },
    "goals": [{"description": "Stay at home with support.", "target_date": "2027-03-31"}],
    "risks": [{"type": "falls", "level": "high", "description": "Two falls this year."}],
    "case_notes": [
        {"date": "2026-10-02", "kind": "report", "author": "OT Example", "text": "Narrative."}
    ],
}


def child_record() -> dict[str, Any]:
    """A looked-after child's record covering most categories (a fresh copy each call)."""
    return copy.deepcopy(_CHILD)


def adult_record() -> dict[str, Any]:
    """An older adult's record covering most categories (a fresh copy each call)."""
    return copy.deepcopy(_ADULT)
