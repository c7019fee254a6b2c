"""Article 19 notices: which recipients must be told of a rectification, erasure or restriction.

UK GDPR Article 19: the council tells every recipient of the person's data about a correction,
an erasure or a restriction, whether or not the agreement has since ended. This plans the
notices: per partner that received data about the person (found by blind index), the original
disclosures, the affected field paths that partner received and, for a rectification, which of
them carry a corrected value. Values are never part of the plan or its audit entry.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agreements.dictionary import entries, lookup
from agreements.transforms import refusal
from gateway import audit
from gateway.application.admin_ports import StorePort
from gateway.errors import GatewayError
from gateway.protection import Protection
from gateway.store import disclosures, partners_repo
from gateway.store.disclosure_model import DISCLOSURE, Disclosure
from gateway.store.unit_of_work import Connection

RECEIVED = frozenset({"queued", "dispatched", "receipted"})  # left, or leaving, the council


class NoticeKind(enum.StrEnum):
    """What happened to the person's data that recipients must hear of."""

    RECTIFICATION = "rectification"
    ERASURE = "erasure"
    RESTRICTION = "restriction"


class NoticeRequestError(GatewayError):
    """The notice request is not valid; the message names the path, never a value."""

    code = "notice_request_invalid"


@dataclass(frozen=True, slots=True)
class NoticeRequest:
    """A `subject notify` request: about whom, what kind, why, which paths, corrected to what."""

    nhs_number: str
    kind: NoticeKind
    reason: str
    actor: audit.Actor
    fields: Sequence[str] = ()
    corrections: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PartnerNotice:
    """The notice one partner gets: which disclosures, which paths, which corrected."""

    partner: str
    partner_name: str
    disclosure_ids: tuple[str, ...]
    paths: tuple[str, ...]
    corrected_paths: tuple[str, ...]
    latest: tuple[str, int] = ("", 0)  # agreement id and version of the latest disclosure
    # The latest `retain_until` of those disclosures: the notice is kept at least as long.
    kept_until: datetime | None = None
    # path -> (agreement id, purpose) it was first sent under: which transform it went through
    sent_under: Mapping[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NoticePlan:
    """Every notice a request leads to; partners that received none of the paths get none."""

    kind: NoticeKind
    notices: tuple[PartnerNotice, ...]
    not_affected: tuple[str, ...] = field(default=())  # received data, but none of the paths

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (paths and ids only)."""
        return {
            "kind": str(self.kind),
            "notices": [
                {
                    "partner": n.partner,
                    "partner_name": n.partner_name,
                    "disclosure_ids": list(n.disclosure_ids),
                    "paths": list(n.paths),
                    "corrected_paths": list(n.corrected_paths),
                }
                for n in self.notices
            ],
            "not_affected": list(self.not_affected),
        }


def check_request(kind: NoticeKind, fields: Sequence[str], corrections: Mapping[str, Any]) -> None:
    """Paths must be in the data dictionary; corrections only come with a rectification, name
    leaf paths, and hold values of the dictionary's type (a list of them for a `[*]` path)."""
    if corrections and kind is not NoticeKind.RECTIFICATION:
        raise NoticeRequestError("corrected values go only with a rectification notice")
    for path in (*fields, *corrections):
        if lookup(path) is None and not any(e.path.startswith(path + ".") for e in entries()):
            raise NoticeRequestError(f"{path!r} is not a field path in the data dictionary")
    for path, value in corrections.items():
        definition = lookup(path)
        if definition is None:
            raise NoticeRequestError(f"{path!r}: a correction names a field, not a group")
        items = value if isinstance(value, list) and "[*]" in path else [value]
        for item in items:
            if (code := refusal(item, definition)) is not None:
                raise NoticeRequestError(f"{path!r}: the corrected value is refused ({code})")


def _affected(received: Sequence[str], fields: Sequence[str]) -> list[str]:
    """The received paths a request names: all of them, or those at or under a named path."""
    if not fields:
        return sorted(set(received))
    return sorted(
        {p for p in received for f in fields if p == f or p.startswith((f + ".", f + "["))}
    )


async def plan_notices(
    store: StorePort, protection: Protection, request: NoticeRequest, *, at: datetime
) -> NoticePlan:
    """Plan the notices for the person (audited: kind, counts and paths, never values)."""
    kind, fields, corrected = request.kind, request.fields, request.corrections
    check_request(kind, fields, corrected)
    nhs_index = protection.blind_index("nhs_number", request.nhs_number)

    async def work(conn: Connection) -> NoticePlan:
        found = await disclosures.about_subject(conn, nhs_index=nhs_index, local_index=None)
        names = {p.id: p.name for p in await partners_repo.all_partners(conn)}
        by_partner: dict[str, list[Disclosure]] = {}
        for d in found:
            if str(d.status) in RECEIVED and d.record_kind == DISCLOSURE:
                by_partner.setdefault(d.partner_id, []).append(d)
        notices, untouched = [], []
        for partner, received in sorted(by_partner.items()):
            paths = _affected([p for d in received for p in d.fields_sent], fields)
            if not paths:
                untouched.append(partner)
                continue
            sent_under: dict[str, tuple[str, str]] = {}
            for d in received:
                for path in d.fields_sent:
                    sent_under.setdefault(path, (d.agreement_id, d.purpose))
            notices.append(
                PartnerNotice(
                    partner=partner,
                    partner_name=names.get(partner, partner),
                    disclosure_ids=tuple(d.id for d in received),
                    paths=tuple(paths),
                    corrected_paths=tuple(p for p in paths if p in corrected),
                    latest=(received[-1].agreement_id, received[-1].agreement_version),
                    kept_until=max(d.retain_until for d in received),
                    sent_under={p: sent_under[p] for p in paths},
                )
            )
        plan = NoticePlan(kind, tuple(notices), tuple(untouched))
        # The reason is free text and may name people: it goes only sealed (in the notice).
        details = {
            "kind": str(kind),
            "partners": [n.partner for n in plan.notices],
            "paths": sorted({p for n in plan.notices for p in n.paths}),
        }
        await audit.append(conn, request.actor, "subject_notice.planned", at=at, details=details)
        return plan

    return await store.write(work)
