"""The Annex B record of a decision: the facts, the decision, who, when, why (ICO Annex B).

The facts are kept with each decision; those in free text (they may name people) only sealed
under the gateway's data key, and opened in memory when the record is shown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.application.commands import AnnexBFacts
from gateway.errors import NotFoundError
from gateway.protection import Protection
from gateway.store.approvals import Approval
from gateway.store.disclosure_model import Disclosure, Status

SEALED_FACTS = ("offence_or_prejudice", "prejudice", "why_necessary", "data_requested")


class AnnexBNotFoundError(NotFoundError):
    """The disclosure was never held for a decision, so it has no Annex B record."""

    code = "annex_b_not_found"


@dataclass(frozen=True)
class AnnexBRecord:
    """One disclosure's Annex B record; `decision` is pending, approved, rejected or denied.

    `policy_reasons`: why the decision re-run at the moment of approval refused it (denied).
    """

    disclosure: Disclosure
    facts: Mapping[str, Any]
    decision: str
    approver: str | None = None
    role: str | None = None
    login: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None
    fields_granted: tuple[str, ...] | None = None
    policy_reasons: tuple[str, ...] = ()


def facts_for_record(
    facts: AnnexBFacts | None, disclosure_id: str, protection: Protection
) -> dict[str, Any]:
    """The facts as a decision keeps them: the free text sealed, absent ones left out."""
    if facts is None:
        return {}
    kept = {k: v for k, v in facts.to_dict().items() if v is not None and v != []}
    for name in SEALED_FACTS:
        value = kept.get(name)
        if isinstance(value, str):
            kept[name] = {"sealed": protection.seal_text(value, disclosure_id)}
        elif value is not None:
            kept[name] = {"sealed_json": protection.seal_text(json.dumps(value), disclosure_id)}
    return kept


def opened_facts(
    facts: Mapping[str, Any], disclosure_id: str, protection: Protection
) -> dict[str, Any]:
    """The facts a decision kept, the sealed ones opened (in memory only)."""
    opened: dict[str, Any] = {}
    for name, value in facts.items():
        if isinstance(value, Mapping) and "sealed" in value:
            opened[name] = protection.open_text(value["sealed"], disclosure_id)
        elif isinstance(value, Mapping) and "sealed_json" in value:
            opened[name] = json.loads(protection.open_text(value["sealed_json"], disclosure_id))
        else:
            opened[name] = value
    return opened


def annex_b_record(
    found: Disclosure,
    decisions: list[Approval],
    held: AnnexBFacts | None,
    protection: Protection,
) -> AnnexBRecord:
    """The record for `found`: its last decision, or the held facts while it waits for one."""
    if not decisions:
        if found.status is not Status.PENDING_APPROVAL:
            raise AnnexBNotFoundError(f"disclosure {found.id} was never held for a decision")
        return AnnexBRecord(found, {} if held is None else held.to_dict(), "pending")
    last = decisions[-1]
    denied = last.decision == "denied"
    return AnnexBRecord(
        found,
        opened_facts(last.facts, found.id, protection),
        last.decision,
        approver=last.actor,
        role=last.role,
        login=last.login,
        decided_at=last.decided_at,
        reason=last.reason,
        fields_granted=last.fields_granted,
        policy_reasons=found.decision_reasons if denied else (),
    )
