"""`gateway-admin catalog apply`: put a catalog of agreements into force, safely."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from agreements.catalog_errors import CatalogError
from agreements.loader import load_catalog
from agreements.model import Catalog
from gateway.application.catalog_apply import apply_catalog, plan_catalog
from gateway.catalog_sync import CatalogRefusedError, FieldChange, Plan
from gateway.cli.common import EXIT_REFUSED, console, print_json, print_table
from gateway.cli.context import ActorOption, AdminContext, JsonFlag, run_async

catalog_app = typer.Typer(
    name="catalog",
    help="The catalog of partners and agreements: check what would change, then apply it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

Directory = Annotated[
    Path, typer.Argument(help="The catalog directory: partners.yaml plus agreement YAML files.")
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Show what would change; change nothing.")]
LABELS = {
    "new_agreement": "new agreement",
    "new_version": "new version",
    "unchanged": "unchanged",
    "refused": "REFUSED",
    "new_partner": "new partner",
    "updated": "updated",
}


@catalog_app.command(
    "apply",
    epilog="Example: gateway-admin catalog apply ./catalog --dry-run, then without --dry-run.",
)
def apply_command(
    directory: Directory,
    dry_run: DryRun = False,
    actor: ActorOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Validate a catalog, show every change, and apply it all in one audited transaction."""
    catalog = _load(directory, json_output)

    async def work(ctx: AdminContext) -> Plan:
        if dry_run:
            return await plan_catalog(ctx.store, catalog)
        return await apply_catalog(ctx.store, catalog, actor=ctx.actor, at=ctx.now)

    try:
        plan = run_async(work, actor=actor)
    except CatalogRefusedError as exc:
        plan = exc.plan

    applied = plan.ok and not dry_run
    if json_output:
        print_json({"dry_run": dry_run, "applied": applied and plan.changed, **plan.to_dict()})
    else:
        print_plan(plan, dry_run=dry_run)
    if not plan.ok:
        raise typer.Exit(EXIT_REFUSED)


def _load(directory: Path, json_output: bool) -> Catalog:
    """The whole catalog, or every problem in it and exit 1."""
    try:
        return load_catalog(directory)
    except CatalogError as exc:
        problems = [problem.to_dict() for problem in exc.problems]
        if json_output:
            print_json({"ok": False, "applied": False, "problems": problems})
        else:
            print_table(
                f"the catalog is not valid: {len(problems)} problem(s); nothing was applied",
                ("file", "field", "rule", "message"),
                [(p["file"], p["field"], p["rule"], p["message"]) for p in problems],
            )
        raise typer.Exit(EXIT_REFUSED) from None


def render(value: Any) -> str:
    """A value of an agreement document, compact on one line ('' when absent)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(", ", ": "))


def print_changes(title: str, changes: Sequence[FieldChange]) -> None:
    """A field-by-field diff as a table."""
    print_table(
        title,
        ("field", "change", "before", "after"),
        [(c.field, c.change, render(c.before), render(c.after)) for c in changes],
    )


def print_plan(plan: Plan, *, dry_run: bool) -> None:
    """What the catalog changes, for people: partners, agreements, each diff, refusals."""
    out = console()
    moving = [p for p in plan.partners if p.kind != "unchanged"]
    if moving:
        print_table(
            "partners",
            ("partner", "change", "fields"),
            [(p.id, LABELS[p.kind], ", ".join(c.field for c in p.changes)) for p in moving],
        )
    print_table(
        "agreements",
        ("agreement", "change", "stored", "catalog", "status now"),
        [
            (
                a.id,
                LABELS[a.kind],
                f"v{a.stored_version}" if a.stored_version else "",
                f"v{a.version}",
                a.stored_status or "",
            )
            for a in plan.agreements
        ],
    )
    for change in plan.agreements:
        if change.changes and change.kind != "unchanged":
            print_changes(
                f"{change.id}: v{change.stored_version} -> v{change.version}", change.changes
            )
        for warning in change.warnings:
            out.print(
                f"[yellow]warning:[/] {escape(change.id)}: {escape(warning)}", highlight=False
            )
    for refusal in plan.refusals:
        text = f"{refusal.agreement_id}: {refusal.message} [{refusal.code}]"
        out.print(f"[bold red]refused:[/] {escape(text)}", highlight=False)
    if plan.not_in_catalog:
        out.print(
            "stored but not in this catalog (left as they are): " + ", ".join(plan.not_in_catalog),
            highlight=False,
            markup=False,
        )
    out.print(_summary(plan, dry_run=dry_run), highlight=False, markup=False)


def _summary(plan: Plan, *, dry_run: bool) -> str:
    counts = dict.fromkeys(("new_agreement", "new_version", "unchanged"), 0)
    for change in plan.agreements:
        counts[change.kind] = counts.get(change.kind, 0) + 1
    partners = sum(1 for p in plan.partners if p.kind != "unchanged")
    text = (
        f"{counts['new_agreement']} new agreement(s), {counts['new_version']} new version(s), "
        f"{counts['unchanged']} unchanged, {partners} partner(s) new or updated"
    )
    if not plan.ok:
        return f"nothing applied: {len(plan.refusals)} refusal(s). ({text})"
    if dry_run:
        return f"dry run, nothing changed: would apply {text}"
    return f"applied: {text}" if plan.changed else "nothing to apply: the store matches the catalog"
