"""`gateway-admin agreements suspend|resume|terminate|due`: an agreement's life once in force.

A status change is written to the database, which every gateway process re-reads every few
seconds, so it takes effect for new disclosures without a restart.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, time
from typing import Annotated, Any

import typer

from gateway.agreement_lifecycle import DueItem, StatusAction
from gateway.application.agreement_register import agreements_due, change_agreement_status
from gateway.cli.common import EXIT_ATTENTION, print_json, print_table
from gateway.cli.context import (
    ActorOption,
    AdminContext,
    JsonFlag,
    ReasonOption,
    check_reason,
    parse_date,
    run_async,
    usage,
)
from gateway.council_smime import load_council_smime
from gateway.council_smime import paths as smime_paths

AgreementId = Annotated[str, typer.Argument(help="The agreement id, e.g. KM-NHS-LAC-001.")]
EFFECT = {
    "suspend": "new disclosures are refused within seconds; queued ones are held until resumed",
    "resume": "disclosures may flow again within seconds",
    "terminate": "for good: new disclosures are refused and held ones will fail",
}


def register(app: typer.Typer) -> None:
    """Add these commands to the agreements group."""
    app.command("suspend", epilog=_example("suspend", "partner reported a breach"))(suspend)
    app.command("resume", epilog=_example("resume", "breach investigated and closed"))(resume)
    app.command("terminate", epilog=_example("terminate", "service decommissioned") + " --yes")(
        terminate
    )
    app.command("due", epilog="Example: gateway-admin agreements due --days 60")(due)


def _example(action: str, reason: str) -> str:
    return f'Example: gateway-admin agreements {action} KM-POL-SG-018 --reason "{reason}"'


def suspend(
    agreement_id: AgreementId,
    reason: ReasonOption,
    actor: ActorOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Stop all disclosures under an agreement at once (for example after a partner's breach)."""
    _change("suspend", agreement_id, reason, actor, json_output)


def resume(
    agreement_id: AgreementId,
    reason: ReasonOption,
    actor: ActorOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Let a suspended agreement permit disclosures again."""
    _change("resume", agreement_id, reason, actor, json_output)


def terminate(
    agreement_id: AgreementId,
    reason: ReasonOption,
    actor: ActorOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    json_output: JsonFlag = False,
) -> None:
    """End an agreement for good; it cannot be resumed (a new agreement needs a new id)."""
    if not yes:
        if not sys.stdin.isatty():
            raise usage("terminate cannot be undone: add --yes when not at a terminal")
        typer.confirm(f"Terminate {agreement_id} for good?", abort=True)
    _change("terminate", agreement_id, reason, actor, json_output)


def _change(
    action: StatusAction, agreement_id: str, reason: str, actor: str | None, json_output: bool
) -> None:
    why = check_reason(reason)

    async def work(ctx: AdminContext) -> dict[str, Any]:
        change = await change_agreement_status(
            ctx.store, agreement_id, action, why, actor=ctx.actor, at=ctx.now
        )
        return {
            "id": change.id,
            "actor": ctx.actor.name,
            "version": change.version,
            "from": change.from_status,
            "to": change.to_status,
            "reason": change.reason,
        }

    result = run_async(work, actor=actor)
    if json_output:
        print_json(result)
        return
    typer.echo(
        f"{result['id']} v{result['version']}: {result['from']} -> {result['to']} "
        f"({EFFECT[action]})"
    )


def due(
    days: Annotated[int, typer.Option(min=0, max=3660, help="Look this many days ahead.")] = 30,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Report as on this date (default: today).")
    ] = None,
    json_output: JsonFlag = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help=f"Exit {EXIT_ATTENTION} when anything is listed (for cron and monitoring).",
        ),
    ] = False,
) -> None:
    """What needs action: agreements ending or due review soon or overdue; partners lacking keys
    or S/MIME certificates; the council's S/MIME certificate expiring."""
    moment = datetime.combine(parse_date(as_of, "--as-of"), time(12), tzinfo=UTC) if as_of else None

    async def work(ctx: AdminContext) -> list[DueItem]:
        smime = load_council_smime(
            *smime_paths(
                ctx.settings.keys_dir, ctx.settings.smime_cert_file, ctx.settings.smime_key_file
            )
        )
        return await agreements_due(
            ctx.store,
            now=moment or ctx.now,
            days=days,
            council_smime_until=smime.not_after if smime else None,
        )

    items = run_async(work)
    if json_output:
        print_json({"days": days, "items": [item.to_dict() for item in items]})
    else:
        print_table(
            f"{len(items)} item(s) due within {days} days or overdue",
            ("what", "agreement / partner", "date", "status", "detail"),
            [
                (i.kind, i.subject, i.due.isoformat() if i.due else "", i.status, i.detail)
                for i in items
            ],
        )
    if check and items:
        raise typer.Exit(EXIT_ATTENTION)
