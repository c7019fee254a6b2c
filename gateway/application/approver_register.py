"""The register of approvers: staff who may decide held disclosures, per agreement.

An approver is named by the staff identifier the case systems send in `requested_by.user`, so
the four-eyes rule can compare the two (`gateway.application.four_eyes`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from gateway.agreement_lifecycle import AgreementNotFoundError
from gateway.application.admin_ports import AuditTrail, StorePort, chained_entry
from gateway.application.client_systems import AgreementLookup
from gateway.application.four_eyes import APPROVER_ROLES, approver_name, staff_key
from gateway.audit import Actor
from gateway.errors import ConflictError, GatewayError, NotFoundError
from gateway.store import agreements_repo, approvers_repo
from gateway.store.approvers_repo import StoredApprover
from gateway.store.unit_of_work import Connection


class ApproverRoleInvalidError(GatewayError):
    """The role is not one of caldicott_guardian, dpo, ig_manager."""

    code = "approver_role_invalid"


class ApproverExistsError(ConflictError):
    """An approver with this name (compared case-insensitively) is registered."""

    code = "approver_exists"


class ApproverNotFoundError(NotFoundError):
    """No approver with this name is registered."""

    code = "approver_not_found"


class ApproverRecords(Protocol):
    """The approver rows (`gateway.store.approvers_repo`)."""

    async def get(self, conn: Connection, name_key: str) -> StoredApprover | None: ...

    async def create(self, conn: Connection, approver: StoredApprover) -> None: ...

    async def remove(self, conn: Connection, name_key: str) -> bool: ...

    async def all_approvers(self, conn: Connection) -> list[StoredApprover]: ...


async def add_approver(
    store: StorePort,
    name: str,
    agreements: Iterable[str],
    *,
    role: str | None,
    actor: Actor,
    at: datetime,
    approvers: ApproverRecords = approvers_repo,
    stored_agreements: AgreementLookup = agreements_repo,
    audit_entry: AuditTrail = chained_entry,
) -> StoredApprover:
    """Register `name` to approve or reject held disclosures under `agreements`."""
    shown = approver_name(name)
    if role is not None and role not in APPROVER_ROLES:
        raise ApproverRoleInvalidError(f"role must be one of {', '.join(APPROVER_ROLES)}")
    ids = frozenset(agreements)
    if not ids:
        raise GatewayError(
            "name at least one agreement the approver decides for",
            code="approver_agreements_missing",
        )
    approver = StoredApprover(staff_key(shown), shown, role, ids, actor.name, at)

    async def work(conn: Connection) -> None:
        if await approvers.get(conn, approver.name_key) is not None:
            raise ApproverExistsError(f"an approver named {shown!r} is registered")
        for agreement_id in sorted(ids):
            if await stored_agreements.get(conn, agreement_id) is None:
                raise AgreementNotFoundError(f"no agreement {agreement_id!r} is stored")
        await approvers.create(conn, approver)
        details = {"agreements": sorted(ids), "role": role}
        targets = {"approver": shown}
        await audit_entry(conn, actor, "approver.added", at=at, targets=targets, details=details)

    await store.write(work)
    return approver


async def remove_approver(
    store: StorePort,
    name: str,
    *,
    actor: Actor,
    at: datetime,
    approvers: ApproverRecords = approvers_repo,
    audit_entry: AuditTrail = chained_entry,
) -> StoredApprover:
    """Unregister an approver: they can decide nothing from now on (past decisions stay)."""
    key = staff_key(name)

    async def work(conn: Connection) -> StoredApprover:
        found = await approvers.get(conn, key)
        if found is None:
            raise ApproverNotFoundError(f"no approver named {name.strip()!r}")
        await approvers.remove(conn, key)
        targets = {"approver": found.name}
        await audit_entry(conn, actor, "approver.removed", at=at, targets=targets)
        return found

    return await store.write(work)


async def list_approvers(
    store: StorePort, *, approvers: ApproverRecords = approvers_repo
) -> list[StoredApprover]:
    """Every registered approver, by name."""
    async with store.read() as conn:
        return await approvers.all_approvers(conn)
