"""The policy tour: a dozen example disclosures decided and minimised against the catalog.

`gateway demo` prints it today; the full end-to-end demo keeps calling `print_policy_tour`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from agreements.decision import DecisionContext, DisclosureRequest, Outcome, decide
from agreements.loader import default_catalog_dir, load_catalog
from agreements.minimise import minimise
from agreements.model import Catalog
from agreements.samples import adult_record, child_record

TOUR_DATE = date(2026, 11, 25)
"""Fixed so that the tour reads the same every run (review dates age with the real clock)."""

_TOUR_KEY = b"policy-tour-pseudonym-key (not a secret)"
_STYLE = {Outcome.ALLOWED: "green", Outcome.NEEDS_APPROVAL: "yellow", Outcome.DENIED: "red"}
_SHOW = 4


@dataclass(frozen=True)
class Example:
    """One example request of the tour."""

    label: str
    agreement_id: str
    purpose: str
    adult: bool = False
    identifiers: frozenset[str] = frozenset({"nhs_number", "local_id"})
    facts: bool = False
    opted_out: bool = False
    authorised: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


EXAMPLES: tuple[Example, ...] = (
    Example("LAC health assessment", "KM-NHS-LAC-001", "looked_after_children_health"),
    Example("Hospital discharge, pathway 1", "KM-NHS-DIS-003", "hospital_discharge", adult=True),
    Example("ICB commissioning (pseudonymised)", "KM-ICB-COM-004", "commissioning", adult=True),
    Example(
        "ICB commissioning, subject opted out",
        "KM-ICB-COM-004",
        "commissioning",
        adult=True,
        opted_out=True,
    ),
    Example("Home care package", "KM-DOM-006", "direct_care", adult=True),
    Example("GP: Care Act outcome (review overdue)", "KM-GP-005", "direct_care", adult=True),
    Example("Short breaks (review > 90 days late)", "KM-RSP-008", "direct_care"),
    Example("Police Schedule 2 request", "KM-POL-S2-011", "law_enforcement_request", facts=True),
    Example("Police request without Annex B facts", "KM-POL-S2-011", "law_enforcement_request"),
    Example("DWP asks for safeguarding data", "KM-DWP-FR-012", "safeguarding_children"),
    Example("Youth justice plan", "KM-YJS-015", "crime_prevention"),
    Example("Children in need census", "KM-DFE-CIN-013", "statutory_return"),
    Example(
        "Caller not authorised for CQC", "KM-CQC-014", "regulatory_inspection", authorised=False
    ),
    Example("Expired agreement (example)", "EXAMPLE-EXPIRED-001", "hospital_discharge", adult=True),
    Example("Suspended agreement (example)", "EXAMPLE-SUSPENDED-001", "care_assessment"),
    Example("Unknown agreement", "KM-NONE-999", "direct_care"),
)


def _names(paths: Sequence[str]) -> str:
    if not paths:
        return "-"
    shown = ", ".join(paths[:_SHOW])
    more = len(paths) - _SHOW
    return f"({len(paths)}) {shown}" + (f", +{more} more" if more > 0 else "")


def tour_rows(catalog: Catalog, today: date = TOUR_DATE) -> list[dict[str, Any]]:
    """Decide and minimise every example; rows of names and codes only (no values)."""
    rows = []
    for example in EXAMPLES:
        agreement = catalog.agreement(example.agreement_id)
        authorised = frozenset(catalog.agreements) if example.authorised else frozenset()
        request = DisclosureRequest(
            example.agreement_id,
            example.purpose,
            example.identifiers,
            has_approval_facts=example.facts,
        )
        context = DecisionContext(today, authorised, subject_opted_out=example.opted_out)
        decision = decide(request, agreement, context)
        sent: tuple[str, ...] = ()
        removed: tuple[str, ...] = ()
        if agreement is not None and decision.outcome is not Outcome.DENIED:
            record = adult_record() if example.adult else child_record()
            subject: dict[str, Any] = {
                name: record["identity"][name]
                for name in ("nhs_number", "local_id")
                if name in example.identifiers
            }
            result = minimise(
                record,
                agreement,
                example.purpose,
                pseudonym_key=_TOUR_KEY,
                today=today,
                subject=subject,
            )
            sent, removed = result.sent, result.removed
        rows.append(
            {
                "example": example.label,
                "agreement": example.agreement_id,
                "purpose": example.purpose,
                "outcome": decision.outcome,
                "reasons": decision.reasons,
                "warnings": decision.warnings,
                "sent": sent,
                "removed": removed,
            }
        )
    return rows


def print_policy_tour(
    console: Console, *, today: date = TOUR_DATE, catalog_dir: Path | None = None
) -> None:
    """Show people what the policy core decides, and what leaves, for a dozen requests."""
    directory = catalog_dir or default_catalog_dir()
    catalog = load_catalog(directory)
    console.print(
        f"[bold]Policy tour[/]: {len(catalog.agreements)} agreements and "
        f"{len(catalog.partners)} partners loaded from {directory}; decisions as on {today}."
    )
    table = Table(show_lines=True)
    for column in ("#", "request", "decision", "reasons / warnings", "sent", "removed"):
        table.add_column(column, overflow="fold")
    for number, row in enumerate(tour_rows(catalog, today), start=1):
        codes = list(row["reasons"]) + [f"warning: {code}" for code in row["warnings"]]
        outcome = row["outcome"]
        table.add_row(
            str(number),
            f"{row['example']}\n[dim]{row['agreement']} · {row['purpose']}[/]",
            f"[{_STYLE[outcome]}]{outcome}[/]",
            "\n".join(codes) or "-",
            _names(row["sent"]),
            _names(row["removed"]),
        )
    console.print(table)
    console.print(
        "Fields are listed by name only; values never leave memory. Reason codes: "
        "docs/reason-codes.md."
    )
