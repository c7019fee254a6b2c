"""`gateway-admin approvers ...`: the staff who may decide held disclosures, per agreement.

An approver is named by the staff identifier the case systems send in `requested_by.user`, so
nobody can approve a disclosure they requested (compared trimmed and case-insensitively).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from gateway.application.approver_register import add_approver, list_approvers, remove_approver
from gateway.application.four_eyes import APPROVER_ROLES, approver_name
from gateway.cli.common import print_json, print_table
from gateway.cli.context import ActorOption, AdminContext, JsonFlag, run_async, usage
from gateway.errors import GatewayError
from gateway.store.approvers_repo import StoredApprover

approvers_app = typer.Typer(
    name="approvers",
    help="Staff who may approve or reject held disclosures: add, list, remove.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ApproverName = Annotated[
    str, typer.Argument(help="The staff identifier case systems send as requested_by.user.")
]


def _approver_dict(approver: StoredApprover) -> dict[str, Any]:
    return {
        "name": approver.name,
        "role": approver.role,
        "agreements": sorted(approver.agreements),
        "added_by": approver.added_by,
        "added_at": approver.added_at.isoformat(),
    }


@approvers_app.command(
    "add",
    epilog="Example: gateway-admin approvers add ig-0007 --agreements KM-POL-S2-011,KM-DWP-FR-012"
    " --role caldicott_guardian",
)
def add(
    name: ApproverName,
    agreements: Annotated[
        str, typer.Option(help="Agreement ids they decide held disclosures for, comma-separated.")
    ],
    role: Annotated[
        str | None, typer.Option(help=f"Their role: {', '.join(APPROVER_ROLES)}.")
    ] = None,
    actor: ActorOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Register an approver for one or more agreements (audited)."""
    try:
        approver_name(name)
    except GatewayError as exc:
        raise usage(exc.message) from None
    if role is not None and role not in APPROVER_ROLES:
        raise usage(f"--role: one of {', '.join(APPROVER_ROLES)}")
    ids = sorted({part.strip() for part in agreements.split(",") if part.strip()})
    if not ids:
        raise usage("--agreements: give at least one agreement id")

    async def work(ctx: AdminContext) -> StoredApprover:
        return await add_approver(ctx.store, name, ids, role=role, actor=ctx.actor, at=ctx.now)

    added = run_async(work, actor=actor)
    if json_output:
        print_json(_approver_dict(added))
    else:
        typer.echo(f"approver {added.name} may decide held disclosures under {', '.join(ids)}")


@approvers_app.command("list", epilog="Example: gateway-admin approvers list --json")
def list_command(json_output: JsonFlag = False) -> None:
    """Every registered approver, their role and agreements."""

    async def work(ctx: AdminContext) -> list[dict[str, Any]]:
        return [_approver_dict(a) for a in await list_approvers(ctx.store)]

    rows = run_async(work)
    if json_output:
        print_json(rows)
        return
    table = [
        (r["name"], r["role"] or "", ", ".join(r["agreements"]), r["added_by"], r["added_at"][:16])
        for r in rows
    ]
    print_table(
        f"{len(rows)} approver(s)", ("name", "role", "agreements", "added by", "added"), table
    )


@approvers_app.command("remove", epilog="Example: gateway-admin approvers remove ig-0007")
def remove(name: ApproverName, actor: ActorOption = None, json_output: JsonFlag = False) -> None:
    """Unregister an approver: they decide nothing from now on (past decisions stay recorded)."""

    async def work(ctx: AdminContext) -> StoredApprover:
        return await remove_approver(ctx.store, name, actor=ctx.actor, at=ctx.now)

    removed = run_async(work, actor=actor)
    if json_output:
        print_json({"name": removed.name, "status": "removed"})
    else:
        typer.echo(f"approver {removed.name} removed")
