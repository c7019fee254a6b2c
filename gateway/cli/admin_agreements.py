"""`gateway-admin agreements ...`: validate a catalog, and read the agreements in force.

Status changes and the due report are in `admin_agreement_status`, on the same command group.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from agreements.loader import validate_paths
from agreements.model import AgreementStatus
from gateway.agreement_lifecycle import AgreementNotFoundError
from gateway.application.agreement_register import agreement_versions, current_agreements
from gateway.catalog_sync import diff_documents
from gateway.cli.admin_agreement_status import register as register_status
from gateway.cli.admin_catalog import print_changes, render
from gateway.cli.common import EXIT_REFUSED, console, print_json, print_table
from gateway.cli.context import AdminContext, JsonFlag, run_async
from gateway.store.agreements_repo import StoredAgreement

agreements_app = typer.Typer(
    name="agreements",
    help="Information sharing agreements: validate, list, show, diff, suspend, resume, due.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

Paths = Annotated[
    list[Path],
    typer.Argument(help="Catalog directories (with partners.yaml) or agreement YAML files."),
]
AgreementId = Annotated[str, typer.Argument(help="The agreement id, e.g. KM-NHS-LAC-001.")]


@agreements_app.command(
    "validate", epilog="Example: gateway-admin agreements validate ./catalog new-agreement.yaml"
)
def validate(paths: Paths, json_output: JsonFlag = False) -> None:
    """Report every problem in every file; exit non-zero if there is any."""
    problems = validate_paths(paths)
    if json_output:
        print_json(
            {
                "valid": not problems,
                "paths": [str(path) for path in paths],
                "problems": [problem.to_dict() for problem in problems],
            }
        )
    elif problems:
        print_table(
            f"{len(problems)} problem(s)",
            ("file", "field", "rule", "message"),
            [(p.file, p.field, p.rule, p.message) for p in problems],
        )
    else:
        console().print(f"valid: {', '.join(str(path) for path in paths)}", highlight=False)
    if problems:
        raise typer.Exit(EXIT_REFUSED)


def summary(stored: StoredAgreement) -> dict[str, Any]:
    """The listing facts of one stored version."""
    return {
        "id": stored.id,
        "version": stored.version,
        "title": stored.document.get("title", ""),
        "partner": stored.partner_id,
        "status": stored.status,
        "effective_from": stored.effective_from.isoformat(),
        "effective_to": stored.effective_to.isoformat() if stored.effective_to else None,
        "review_due": stored.review_due.isoformat() if stored.review_due else None,
        "applied_by": stored.applied_by,
        "applied_at": stored.applied_at.isoformat(),
    }


@agreements_app.command(
    "list", epilog="Example: gateway-admin agreements list --status active --partner kent-police"
)
def list_command(
    status: Annotated[
        AgreementStatus | None, typer.Option(help="Only agreements with this status.")
    ] = None,
    partner: Annotated[str | None, typer.Option(help="Only agreements with this partner.")] = None,
    json_output: JsonFlag = False,
) -> None:
    """List the agreements in force (the newest version of each) with their status and dates."""

    async def work(ctx: AdminContext) -> list[StoredAgreement]:
        return await current_agreements(ctx.store)

    rows = [
        summary(a)
        for a in run_async(work)
        if (status is None or a.status == status.value) and (partner in (None, a.partner_id))
    ]
    if json_output:
        print_json(rows)
        return
    columns = ("id", "version", "title", "partner", "status", "effective_to", "review_due")
    print_table(f"{len(rows)} agreement(s)", columns, [[row[c] for c in columns] for row in rows])


def _pick(found: list[StoredAgreement], version: int | None) -> StoredAgreement:
    if version is None:
        return found[-1]
    for stored in found:
        if stored.version == version:
            return stored
    have = ", ".join(str(s.version) for s in found)
    raise AgreementNotFoundError(f"{found[0].id} has no version {version} (stored: {have})")


@agreements_app.command(
    "show", epilog="Example: gateway-admin agreements show KM-NHS-LAC-001 --version 2"
)
def show(
    agreement_id: AgreementId,
    version: Annotated[int | None, typer.Option(help="A stored version (default: newest).")] = None,
    json_output: JsonFlag = False,
) -> None:
    """Everything about one agreement version: terms, lawful basis, field rules, who applied it."""

    async def work(ctx: AdminContext) -> list[StoredAgreement]:
        return await agreement_versions(ctx.store, agreement_id)

    found = run_async(work)
    stored = _pick(found, version)
    data = {
        **summary(stored),
        "versions": [s.version for s in found],
        "content_hash": stored.content_hash,
        "document": dict(stored.document),
    }
    if json_output:
        print_json(data)
        return
    document = dict(stored.document)
    fields = document.pop("fields", [])
    skip = {"id", "version", "status", "title", "partner"}
    facts = [(k, render(data[k])) for k in ("id", "version", "title", "partner", "status")]
    facts += [(key, render(value)) for key, value in document.items() if key not in skip]
    facts += [
        ("stored versions", ", ".join(str(v) for v in data["versions"])),
        ("applied", f"{stored.applied_at:%Y-%m-%d %H:%M} by {stored.applied_by}"),
    ]
    print_table(f"{stored.id} v{stored.version}", ("", ""), facts)
    rules = [
        (
            rule["path"],
            ", ".join(rule.get("purposes", [])) or "(all)",
            rule.get("transform", "keep"),
        )
        for rule in fields
    ]
    print_table(
        f"field rules ({len(fields)}; anything else is removed)",
        ("path", "purposes", "transform"),
        rules,
    )


@agreements_app.command("diff", epilog="Example: gateway-admin agreements diff KM-NHS-LAC-001 2 3")
def diff(
    agreement_id: AgreementId,
    v1: Annotated[int, typer.Argument(help="The earlier version.")],
    v2: Annotated[int, typer.Argument(help="The later version.")],
    json_output: JsonFlag = False,
) -> None:
    """Field by field, what changed between two stored versions of an agreement."""

    async def work(ctx: AdminContext) -> list[StoredAgreement]:
        return await agreement_versions(ctx.store, agreement_id)

    found = run_async(work)
    before, after = _pick(found, v1), _pick(found, v2)
    changes = diff_documents(before.document, after.document)
    if json_output:
        print_json(
            {"id": agreement_id, "from": v1, "to": v2, "changes": [c.to_dict() for c in changes]}
        )
    elif changes:
        print_changes(f"{agreement_id}: v{v1} -> v{v2}", changes)
    else:
        console().print(f"{agreement_id}: v{v1} and v{v2} have the same content", highlight=False)


register_status(agreements_app)  # suspend, resume, terminate, due
