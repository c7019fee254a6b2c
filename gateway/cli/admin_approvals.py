"""`gateway-admin approvals`: the human decision on held disclosures (Annex B record)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from gateway.application.annex_b import AnnexBRecord
from gateway.application.four_eyes import ApproverIdentity
from gateway.cli.common import default_actor, fail, print_json, print_table
from gateway.cli.context import JsonFlag, ReasonOption, check_reason, usage, with_gateway
from gateway.errors import GatewayError
from gateway.store.disclosure_model import Disclosure, Status

approvals_app = typer.Typer(
    help="Decide held disclosures (one-off agreements, police and DWP requests).",
    no_args_is_help=True,
)
IdArgument = Annotated[str, typer.Argument(help="The disclosure id.")]


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
    items = [_summary(item) for item in with_gateway(lambda gw: gw.approvals.pending())]
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
def show_command(
    disclosure_id: IdArgument,
    annex_b: Annotated[
        bool,
        typer.Option(
            "--annex-b", help="The Annex B record: facts, decision, who, when, why (any status)."
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """One held disclosure: Annex B facts, the request's reason, the fields that would leave.

    Example: gateway-admin approvals show 6f1c... --annex-b --json
    """
    if annex_b:
        _show_annex_b(with_gateway(lambda gw: gw.approvals.annex_b(disclosure_id)), as_json)
        return
    held = with_gateway(lambda gw: gw.approvals.show(disclosure_id))
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


def _annex_b_dict(record: AnnexBRecord) -> dict[str, Any]:
    found = record.disclosure
    granted = record.fields_granted
    return {
        "disclosure": found.id,
        "status": found.status.value,
        "agreement": {"id": found.agreement_id, "version": found.agreement_version},
        "partner": found.partner_id,
        "purpose": found.purpose,
        "requested_by": {"user": found.requested_by_user, "role": found.requested_by_role},
        "requested_at": found.created_at.isoformat(),
        "facts": dict(record.facts),
        "decision": record.decision,
        "decided_by": (
            None
            if record.approver is None
            else {"approver": record.approver, "role": record.role, "login": record.login}
        ),
        "decided_at": record.decided_at.isoformat() if record.decided_at else None,
        "reason": record.reason,
        "fields_granted": None if granted is None else list(granted),
        "policy_reasons": list(record.policy_reasons),
        "fields_sent": list(found.fields_sent),
    }


def _show_annex_b(record: AnnexBRecord, as_json: bool) -> None:
    data = _annex_b_dict(record)
    if as_json:
        print_json(data)
        return
    facts = [[f"  {name}", _text(value)] for name, value in data["facts"].items()]
    who = data["decided_by"] or {}
    rows = [
        ["disclosure", data["disclosure"]],
        ["agreement", f"{data['agreement']['id']} v{data['agreement']['version']}"],
        ["partner / purpose", f"{data['partner']} / {data['purpose']}"],
        ["requested by", f"{data['requested_by']['user']} ({data['requested_by']['role']})"],
        ["requested at", data["requested_at"]],
        ["facts", ""],
        *facts,
        ["decision", data["decision"]],
        ["decided by", _text(who.get("approver"))],
        ["role", _text(who.get("role"))],
        ["login", _text(who.get("login"))],
        ["decided at", _text(data["decided_at"])],
        ["why", _text(data["reason"])],
        ["fields granted", _text(data["fields_granted"] or "the whole allowlist")],
        ["policy reasons", _text(data["policy_reasons"])],
        ["status now", data["status"]],
    ]
    print_table(f"Annex B record of disclosure {data['disclosure']}", ("", ""), rows)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value)
    return str(value)


ApproverOption = Annotated[
    str,
    typer.Option(
        "--actor",
        help="Your staff identifier as a registered approver (your OS login is recorded too).",
    ),
]
FieldsOption = Annotated[
    str | None,
    typer.Option(
        "--fields",
        help="Send only these field paths (comma-separated; part of the agreement's allowlist).",
    ),
]


def _approver(name: str) -> ApproverIdentity:
    try:
        return ApproverIdentity(name.strip(), default_actor())
    except GatewayError as exc:
        raise usage(f"--actor: {exc.message}") from None


@approvals_app.command("approve")
def approve_command(
    disclosure_id: IdArgument,
    reason: ReasonOption,
    actor: ApproverOption,
    fields: FieldsOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Approve: decide again now, seal for the partner, queue it, destroy the held copy.

    If the decision re-run now refuses it (agreement suspended, client revoked, opted out,
    partner key gone...), the disclosure is left denied with those reasons, and the exit code
    is 1.

    Example: gateway-admin approvals approve 6f1c... --actor ig-0007
    --reason "Necessary and proportionate; Sch 2 para 2 applies" --fields identity.name
    """
    who = _approver(actor)
    why = check_reason(reason)
    chosen = None if fields is None else fields.split(",")
    done = with_gateway(
        lambda gw: gw.approvals.approve(disclosure_id, approver=who, reason=why, fields=chosen)
    )
    _report(done, as_json)
    if done.status is Status.DENIED:
        raise fail(
            f"disclosure {done.id} is denied: the decision re-run now refused it "
            f"({', '.join(done.decision_reasons)})"
        )


@approvals_app.command("reject")
def reject_command(
    disclosure_id: IdArgument,
    reason: ReasonOption,
    actor: ApproverOption,
    as_json: JsonFlag = False,
) -> None:
    """Reject: record the decision and destroy the held copy (audited).

    Example: gateway-admin approvals reject 6f1c... --actor ig-0007 --reason "Not necessary"
    """
    who = _approver(actor)
    why = check_reason(reason)
    done = with_gateway(lambda gw: gw.approvals.reject(disclosure_id, approver=who, reason=why))
    _report(done, as_json)


def _report(item: Disclosure, as_json: bool) -> None:
    if as_json:
        print_json({**_summary(item), "reasons": list(item.decision_reasons)})
    else:
        print_table(
            None, ("id", "status", "approver"), [[item.id, item.status.value, item.approver]]
        )
