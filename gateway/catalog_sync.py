"""What putting a catalog into force changes: a pure plan against the stored versions, the
field-by-field diff, and the conversions between the policy model and the store's records.

The use case `gateway.application.catalog_apply` writes the plan. The database is the source of
truth once applied: every version is kept, a content change must carry a higher version, and a
status set by an administrator (suspended, terminated) is never overwritten by re-applying the
same version.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from agreements.model import Agreement, AgreementStatus, Catalog, ChannelSpec, Partner
from gateway.errors import GatewayError
from gateway.store import partners_repo
from gateway.store.agreements_repo import StoredAgreement

AgreementChangeKind = Literal["new_agreement", "new_version", "unchanged", "refused"]
PartnerChangeKind = Literal["new_partner", "updated", "unchanged"]
Change = Literal["added", "removed", "changed"]
# A partner's reference and contact details: stored and diffed, never put in audit details.
PARTNER_CONTACTS = ("ods_code", "ico_registration", "contact", "dpo_contact")
_ORDER = {name: index for index, name in enumerate(Agreement.model_fields)}


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One difference between two versions: which field, added/removed/changed, from and to."""

    field: str
    change: Change
    before: Any = None
    after: Any = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "field": self.field,
            "change": self.change,
            "before": self.before,
            "after": self.after,
        }


@dataclass(frozen=True, slots=True)
class AgreementChange:
    """What applying the catalog does to one agreement."""

    id: str
    kind: AgreementChangeKind
    version: int
    stored_version: int | None = None
    stored_status: str | None = None
    changes: tuple[FieldChange, ...] = ()
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "id": self.id,
            "kind": self.kind,
            "version": self.version,
            "stored_version": self.stored_version,
            "stored_status": self.stored_status,
            "changes": [c.to_dict() for c in self.changes],
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True, slots=True)
class PartnerChange:
    """What applying the catalog does to one partner."""

    id: str
    kind: PartnerChangeKind
    changes: tuple[FieldChange, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"id": self.id, "kind": self.kind, "changes": [c.to_dict() for c in self.changes]}


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the catalog cannot be applied as it is (nothing is applied while any remains)."""

    agreement_id: str
    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        """A JSON-ready dict."""
        return {"agreement": self.agreement_id, "code": self.code, "message": self.message}


@dataclass(frozen=True, slots=True)
class Plan:
    """Every partner and agreement of a catalog, and what applying it would do."""

    partners: tuple[PartnerChange, ...]
    agreements: tuple[AgreementChange, ...]
    refusals: tuple[Refusal, ...] = ()
    not_in_catalog: tuple[str, ...] = ()  # stored agreements the catalog no longer has

    @property
    def ok(self) -> bool:
        """True when nothing refuses the apply."""
        return not self.refusals

    @property
    def changed(self) -> bool:
        """True when applying would write anything."""
        return any(p.kind != "unchanged" for p in self.partners) or any(
            a.kind in ("new_agreement", "new_version") for a in self.agreements
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the `--json` output of catalog apply)."""
        return {
            "ok": self.ok,
            "changed": self.changed,
            "partners": [p.to_dict() for p in self.partners],
            "agreements": [a.to_dict() for a in self.agreements],
            "refusals": [r.to_dict() for r in self.refusals],
            "not_in_catalog": list(self.not_in_catalog),
        }


class CatalogRefusedError(GatewayError):
    """The catalog conflicts with what is stored (content change without a new version...)."""

    code = "catalog_refused"

    def __init__(self, plan: Plan) -> None:
        first = plan.refusals[0]
        more = len(plan.refusals) - 1
        tail = f" (and {more} more)" if more else ""
        super().__init__(f"{first.agreement_id}: {first.message} [{first.code}]{tail}")
        self.plan = plan


# --- converting between the policy model and the store's rows (the one place that does it) ---


def partner_record(partner: Partner) -> partners_repo.StoredPartner:
    """The stored form of a catalog partner: channel type, its settings as the target, contacts."""
    target = partner.channel.model_dump(mode="json", exclude_defaults=True, exclude={"type"})
    return partners_repo.StoredPartner(
        partner.id,
        partner.name,
        partner.kind.value,
        partner.channel.type.value,
        target,
        ods_code=partner.ods_code,
        ico_registration=partner.ico_registration,
        contact=partner.contact,
        dpo_contact=partner.dpo_contact,
    )


def partner_from_record(record: partners_repo.StoredPartner) -> Partner:
    """A stored partner as the policy model, its contacts (ODS code, ICO number...) included."""
    channel = ChannelSpec.model_validate({"type": record.channel, **record.target})
    contacts = {name: getattr(record, name) for name in PARTNER_CONTACTS}
    return Partner.model_validate(
        {"id": record.id, "name": record.name, "kind": record.kind, "channel": channel, **contacts}
    )


def agreement_record(agreement: Agreement, *, applied_by: str, at: datetime) -> StoredAgreement:
    """The stored form of one version of an agreement."""
    return StoredAgreement(
        id=agreement.id,
        version=agreement.version,
        status=agreement.status.value,
        partner_id=agreement.partner,
        effective_from=agreement.effective_from,
        effective_to=agreement.effective_to,
        review_due=agreement.review_due,
        document=agreement.to_document(),
        content_hash=agreement.content_hash(),
        applied_by=applied_by,
        applied_at=at,
    )


def agreement_from_record(record: StoredAgreement) -> Agreement:
    """A stored version as the policy model, with the status the store holds now."""
    agreement = Agreement.model_validate(dict(record.document))
    return agreement.model_copy(update={"status": AgreementStatus(record.status)})


# --- the pure plan ---


def diff_documents(
    before: Mapping[str, Any], after: Mapping[str, Any], prefix: str = ""
) -> tuple[FieldChange, ...]:
    """Field-by-field differences between two agreement (or partner) documents."""
    changes: list[FieldChange] = []
    # A stable order (the model's, then alphabetical): PostgreSQL's JSONB keeps no key order.
    keys = sorted(set(after) | set(before), key=lambda k: (_ORDER.get(k, len(_ORDER)), k))
    if not prefix:
        keys = [key for key in keys if key != "version"]  # the headline, not a content change
    for key in keys:
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        name = f"{prefix}{key}"
        if key == "fields" and not prefix:
            changes += _diff_rules(old or [], new or [])
        elif isinstance(old, Mapping) and isinstance(new, Mapping):
            changes += diff_documents(old, new, f"{name}.")
        elif _scalar_list(old) and _scalar_list(new) and set(old or []) != set(new or []):
            was, now = list(old or []), list(new or [])
            changes += [FieldChange(name, "removed", before=v) for v in was if v not in now]
            changes += [FieldChange(name, "added", after=v) for v in now if v not in was]
        else:
            kind: Change = "added" if old is None else "removed" if new is None else "changed"
            changes.append(FieldChange(name, kind, old, new))
    return tuple(changes)


def _scalar_list(value: Any) -> bool:
    return value is None or (
        isinstance(value, list) and all(isinstance(v, str | int) for v in value)
    )


def _diff_rules(before: Sequence[Any], after: Sequence[Any]) -> list[FieldChange]:
    old = {rule["path"]: rule for rule in before}
    new = {rule["path"]: rule for rule in after}
    changes: list[FieldChange] = []
    for path, rule in new.items():
        name = f"fields[{path}]"
        if path not in old:
            changes.append(FieldChange(name, "added", after=_rule_terms(rule)))
        elif old[path] != rule:
            changes += diff_documents(_rule_terms(old[path]), _rule_terms(rule), f"{name}.")
    changes += [
        FieldChange(f"fields[{path}]", "removed", before=_rule_terms(rule))
        for path, rule in old.items()
        if path not in new
    ]
    return changes


def _rule_terms(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A rule without its path, defaults spelled out so a diff reads plainly."""
    return {
        "purposes": list(rule.get("purposes", [])) or ["(all)"],
        "transform": rule.get("transform", "keep"),
    }


def plan(
    catalog: Catalog,
    stored_agreements: Iterable[StoredAgreement],
    stored_partners: Iterable[partners_repo.StoredPartner],
) -> Plan:
    """What applying `catalog` would do, given the newest stored version of each agreement."""
    newest = {s.id: s for s in stored_agreements}
    partners = {p.id: p for p in stored_partners}
    partner_changes = tuple(_plan_partner(p, partners.get(p.id)) for p in _by_id(catalog.partners))
    changes, refusals = [], []
    for agreement in _by_id(catalog.agreements):
        change, refusal = _plan_agreement(agreement, newest.get(agreement.id))
        changes.append(change)
        if refusal is not None:
            refusals.append(refusal)
    missing = tuple(sorted(set(newest) - set(catalog.agreements)))
    return Plan(partner_changes, tuple(changes), tuple(refusals), missing)


def _by_id(items: Mapping[str, Any]) -> list[Any]:
    return [items[key] for key in sorted(items)]


def _partner_document(record: partners_repo.StoredPartner) -> dict[str, Any]:
    return {
        "name": record.name,
        "kind": record.kind,
        "channel": record.channel,
        "target": dict(record.target),
        **{name: getattr(record, name) for name in PARTNER_CONTACTS},
    }


def _plan_partner(partner: Partner, stored: partners_repo.StoredPartner | None) -> PartnerChange:
    wanted = _partner_document(partner_record(partner))
    if stored is None:
        return PartnerChange(partner.id, "new_partner")
    changes = diff_documents(_partner_document(stored), wanted)
    return PartnerChange(partner.id, "updated" if changes else "unchanged", changes)


def _plan_agreement(
    agreement: Agreement, stored: StoredAgreement | None
) -> tuple[AgreementChange, Refusal | None]:
    if stored is None:
        return AgreementChange(agreement.id, "new_agreement", agreement.version), None
    document = agreement.to_document()
    changes = diff_documents(stored.document, document)
    base = AgreementChange(
        agreement.id, "unchanged", agreement.version, stored.version, stored.status, changes
    )
    refusal: Refusal | None = None
    if agreement.version < stored.version:
        refusal = Refusal(
            agreement.id,
            "agreement_version_lowered",
            f"version {agreement.version} is lower than the stored version {stored.version}",
        )
    elif agreement.version == stored.version:
        if stored.content_hash == agreement.content_hash():
            return base, None
        refusal = Refusal(
            agreement.id,
            "agreement_changed_without_new_version",
            f"content differs from the stored version {stored.version}; raise `version`",
        )
    elif stored.status == AgreementStatus.TERMINATED:
        refusal = Refusal(
            agreement.id,
            "agreement_terminated",
            "a terminated agreement takes no new version; give the new agreement a new id",
        )
    if refusal is not None:
        return replace(base, kind="refused"), refusal
    warnings: tuple[str, ...] = ()
    if stored.status not in (AgreementStatus.ACTIVE, agreement.status):
        warnings = (
            f"v{stored.version} is {stored.status} now; v{agreement.version} will be "
            f"{agreement.status.value}",
        )
    return replace(base, kind="new_version", warnings=warnings), None
