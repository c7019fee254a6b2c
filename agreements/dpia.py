"""The DPIA rule: sharing special category or criminal offence data needs a DPIA on record.

UK GDPR Article 35 and the ICO's list of processing likely to result in high risk: the council
assesses such sharing before it starts, and the record of processing names the assessment.
"""

from __future__ import annotations

from agreements.catalog_errors import CatalogProblem
from agreements.dictionary import lookup
from agreements.model import Agreement, Transform


def sensitive_field_paths(agreement: Agreement) -> tuple[list[str], list[str]]:
    """The special category and the criminal offence field paths the agreement sends."""
    sent = [lookup(rule.path) for rule in agreement.fields if rule.transform != Transform.DROP]
    special = sorted(d.path for d in sent if d is not None and d.special_category)
    criminal = sorted(d.path for d in sent if d is not None and d.criminal_offence)
    return special, criminal


def dpia_problems(agreement: Agreement, source: str) -> list[CatalogProblem]:
    """`dpia_required` when special category or criminal offence data goes without a DPIA."""
    if agreement.references.dpia and agreement.references.dpia.strip():
        return []
    special, criminal = sensitive_field_paths(agreement)
    if not special and not criminal:
        return []
    kind = "special category" if special else "criminal offence"
    example = (special or criminal)[0]
    message = f"sends {kind} data ({example}, ...): references.dpia must name the DPIA"
    return [CatalogProblem(source, "references.dpia", "dpia_required", message)]
