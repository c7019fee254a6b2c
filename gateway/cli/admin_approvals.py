"""`gateway-admin approvals`: the human decision on held disclosures (Annex B record)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from gateway.cli.common import print_json, print_table
from gateway.cli.context import ActorOption, JsonFlag, ReasonOption, admin_actor, check_reason
from gateway.service import Gateway
from gateway.settings import load_settings
from gateway.store.disclosure_model import Disclosure

T = TypeVar("T")
approvals_app = typer.Typer(
    help="Decide held disclosures (one-off agreements, police and DWP requests).",
    no_args_is_help=True,
)
IdArgument = Annotated[str, typer.Argument(help="The disclosure id.")]


def _with_gateway(work: Callable[[Gateway], Awaitable[T]]) -> T:
    async def main() -> T:
        gateway = await Gateway.open(load_settings())
        try:
            return await work(gateway)
        finally:
            await gateway.close()

    return asyncio.run(main())


def _summary(item: Disclosure) -> dict[str, Any]:
    return {
        "id": item.id,
        "status": item.status.value,
        "agreement": {"id": item.agreement_id, "version": item.agreement_version},
        "partner": item.partner_id,
        "purpose": item.purpose,
        "client": item.client,
        "requested_by": {"user": item.requested_by_user, "role": item.requested_by_role},
        "created_at": item.created_at.isoformat(),
        "approver": item.approver,
    }


@approvals_app.command("list")
def list_command(as_json: JsonFlag = False) -> None:
    """Disclosures waiting for a decision, oldest first.

    Example: gateway-admin approvals list --json
    """
    items = [_summary(item) for item in _with_gateway(lambda gw: gw.approvals.pending())]
    if as_json:
        print_json(items)
        return
    columns = ("id", "agreement", "partner", "purpose", "requested by", "held since")
    rows = [
        [
            i["id"],
            i["agreement"]["id"],
            i["partner"],
            i["purpose"],
            f"{i['requested_by']['user']} ({i['requested_by']['role']})",
            i["created_at"],
        ]
        for i in items
    ]
    print_table(f"{len(items)} held disclosure(s)", columns, rows)


@approvals_app.command("show")
def show_command(disclosure_id: IdArgument, as_json: JsonFlag = False) -> None:
    """One held disclosure: Annex B facts, the request's reason, the fields that would leave.

    Example: gateway-admin approvals show 6f1c...
    """
    held = _with_gateway(lambda gw: gw.approvals.show(disclosure_id))
    data = {
        **_summary(held.disclosure),
        "annex_b": held.annex_b,
        "reason": held.reason,
        "would_send": list(held.would_send),
        "would_remove": list(held.would_remove),
    }
    if as_json:
        print_json(data)
        return
    rows = [
        [key, value] for key, value in data.items() if key not in ("would_send", "would_remove")
    ]
    rows.append(["would send", ", ".join(held.would_send)])
    rows.append(["would remove", ", ".join(held.would_remove)])
    print_table(f"held disclosure {disclosure_id}", ("", ""), rows)


@approvals_app.command("approve")
def approve_command(
    disclosure_id: IdArgument,
    reason: ReasonOption,
    actor: ActorOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Approve: seal for the partner, queue it, destroy the held copy (audited).

    Example: gateway-admin approvals approve 6f1c... --actor "J Smith, Caldicott Guardian"
    --reason "Necessary and proportionate; Sch 2 para 2 applies"
    """
    who = admin_actor(actor)
    why = check_reason(reason)
    done = _with_gateway(lambda gw: gw.approvals.approve(disclosure_id, actor=who, reason=why))
    _report(done, as_json)


@approvals_app.command("reject")
def reject_command(
    disclosure_id: IdArgument,
    reason: ReasonOption,
    actor: ActorOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Reject: record the decision and destroy the held copy (audited).

    Example: gateway-admin approvals reject 6f1c... --reason "Not necessary"
    """
    who = admin_actor(actor)
    why = check_reason(reason)
    done = _with_gateway(lambda gw: gw.approvals.reject(disclosure_id, actor=who, reason=why))
    _report(done, as_json)


def _report(item: Disclosure, as_json: bool) -> None:
    if as_json:
        print_json(_summary(item))
    else:
        print_table(
            None, ("id", "status", "approver"), [[item.id, item.status.value, item.approver]]
        )
