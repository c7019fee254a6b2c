"""`gateway-admin subject`: duties to the person the data is about (UK GDPR Article 19)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from gateway.application.notice_sending import NoticeRun
from gateway.application.recipient_notices import NoticeKind, NoticePlan, NoticeRequest
from gateway.cli.common import fail, print_json, print_table
from gateway.cli.context import (
    ActorOption,
    JsonFlag,
    ReasonOption,
    admin_actor,
    check_reason,
    usage,
    with_gateway,
)
from gateway.store.notice_rows import NoticeStatus

NhsNumberOption = Annotated[str, typer.Option(help="The person's NHS number.")]

subject_app = typer.Typer(
    name="subject",
    help="Duties to the people the data is about: Article 19 notices to recipients.",
    no_args_is_help=True,
)


@subject_app.command(
    "notify",
    epilog="Example: gateway-admin subject notify --nhs-number 9990001234 --kind rectification "
    "--reason 'date of birth corrected' --fields identity.date_of_birth "
    "--corrections fixes.json",
)
def notify_command(
    *,
    nhs_number: NhsNumberOption,
    kind: Annotated[NoticeKind, typer.Option(help="rectification, erasure or restriction.")],
    reason: ReasonOption,
    fields: Annotated[
        str | None, typer.Option(help="Affected field paths, comma-separated (default: all).")
    ] = None,
    corrections: Annotated[
        Path | None, typer.Option(help="JSON object of field path to corrected value.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show who would be told.")] = False,
    json_output: JsonFlag = False,
    actor: ActorOption = None,
) -> None:
    """Tell every recipient of the person's data of a rectification, erasure or restriction.

    Each partner that received an affected field gets a signed notice sealed to its key, over
    its usual channel, naming the disclosures and paths and, for a rectification, the corrected
    values it received; the notice is queued, delivered and receipted like a disclosure.
    """
    request = NoticeRequest(
        nhs_number=nhs_number,
        kind=kind,
        reason=check_reason(reason),
        fields=tuple(p.strip() for p in (fields or "").split(",") if p.strip()),
        corrections=_corrections(corrections),
        actor=admin_actor(actor),
    )
    if dry_run:
        _show_plan(with_gateway(lambda gw: gw.notices.plan(request)), json_output)
        return
    run = with_gateway(lambda gw: gw.notices.send(request))
    _show_run(run, json_output)
    unsent = [n.partner for n in run.notices if n.not_sent]
    if unsent:
        raise fail(f"no notice could be sealed for {', '.join(unsent)}: see not_sent")


@subject_app.command(
    "notices", epilog="Example: gateway-admin subject notices --nhs-number 9990001234 --json"
)
def notices_command(*, nhs_number: NhsNumberOption, json_output: JsonFlag = False) -> None:
    """Every Article 19 notice sent about the person: to whom, about what, and if receipted."""
    found: Sequence[NoticeStatus] = with_gateway(lambda gw: gw.notices.about(nhs_number))
    items = [_status(item) for item in found]
    if json_output:
        print_json(items)
        return
    print_table(
        f"{len(items)} notice(s)",
        ("notice", "kind", "partner", "sent", "status", "paths"),
        [
            (i["notice_id"], i["kind"], i["partner"], i["created_at"], i["status"], i["paths"])
            for i in items
        ],
    )


def _status(item: NoticeStatus) -> dict[str, Any]:
    record = item.record
    return {
        "notice_id": record.id,
        "request_id": record.request_id,
        "kind": record.kind,
        "partner": record.partner_id,
        "created_at": record.created_at.isoformat(),
        "requested_by": record.requested_by,
        # No delivery row: never sealed, or its delivery record has since been purged.
        "status": item.status or ("not_sent" if item.not_sent else "delivery_record_purged"),
        "not_sent": item.not_sent,
        "receipted_at": item.receipted_at.isoformat() if item.receipted_at else None,
        "disclosure_ids": list(record.disclosure_ids),
        "paths": list(record.paths),
        "corrected_paths": list(record.corrected_paths),
    }


def _show_plan(plan: NoticePlan, json_output: bool) -> None:
    if json_output:
        print_json({"dry_run": True, **plan.as_dict()})
        return
    print_table(
        f"{plan.kind} notice: {len(plan.notices)} recipient(s) would be told",
        ("partner", "disclosures", "paths", "corrected"),
        [
            (
                n.partner_name,
                len(n.disclosure_ids),
                ", ".join(n.paths),
                ", ".join(n.corrected_paths),
            )
            for n in plan.notices
        ],
    )


def _show_run(run: NoticeRun, json_output: bool) -> None:
    if json_output:
        print_json({"dry_run": False, **run.as_dict()})
        return
    print_table(
        f"{run.kind} notice {run.request_id}: {len(run.notices)} recipient(s)",
        ("notice", "partner", "status", "paths", "corrected"),
        [
            (
                n.notice_id,
                n.partner_name,
                n.not_sent or n.status,
                ", ".join(n.paths),
                ", ".join(n.corrected_paths),
            )
            for n in run.notices
        ],
    )


def _corrections(path: Path | None) -> dict[str, Any]:
    """The corrections file: a JSON object of field path to value (values never echoed)."""
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        raise usage(f"--corrections: {path.name} is not a readable JSON file") from None
    if not isinstance(data, dict):
        raise usage("--corrections: expected a JSON object of field path to value")
    return data
