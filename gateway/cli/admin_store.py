"""`gateway-admin db|audit|retention|subject-report`: the store, the audit log, the DPO tools."""

from __future__ import annotations

import asyncio
import enum
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from gateway import audit, jose, retention
from gateway.application.subject_access import SubjectAccessReport, subject_access_report
from gateway.audit_anchor import AnchorError, TsaTrust, read_anchor
from gateway.audit_verify import JwksCheckpointVerifier, VerifyReport, verify
from gateway.cli.common import EXIT_REFUSED, default_actor, fail, print_json, print_table
from gateway.protection import Protection
from gateway.service import checkpoint_anchor
from gateway.settings import Settings, load_settings
from gateway.signer import FileSigner
from gateway.store import partners_repo
from gateway.store.database import Store
from gateway.subject_access_documents import to_html, to_pdf
from gateway.subject_report import subject_report

T = TypeVar("T")

db_app = typer.Typer(help="The database: migrations.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
retention_app = typer.Typer(
    help="Purge envelopes and old disclosure records.", no_args_is_help=True
)

JsonFlag = Annotated[bool, typer.Option("--json", help="One JSON document for scripts.")]
ActorOption = Annotated[str | None, typer.Option(help="Who is acting (default: the OS user).")]


def register(app: typer.Typer) -> None:
    """Add this area's commands to gateway-admin."""
    app.add_typer(db_app, name="db")
    app.add_typer(audit_app, name="audit")
    app.add_typer(retention_app, name="retention")
    app.command("subject-report")(subject_report_command)


def _now() -> datetime:
    return datetime.now(UTC)


def _run(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    """Open the store, run one piece of work, close it."""

    async def main() -> T:
        store = await Store.open(settings.resolved_database_url, settings.database_options)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(main())


def _admin(actor: str | None) -> audit.Actor:
    return audit.Actor(audit.ActorKind.ADMIN, actor or default_actor())


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database to the current schema (safe to run twice, or from two hosts)."""
    settings = load_settings()

    async def work(store: Store) -> None:
        await store.upgrade()

    _run(settings, work)
    typer.echo("database is at the current schema")


@audit_app.command("verify")
def audit_verify(
    as_json: JsonFlag = False,
    jwks: Annotated[
        Path | None,
        typer.Option(help="JWKS file of the council's public keys (default: the store's mirror)."),
    ] = None,
    anchors: Annotated[
        Path | None,
        typer.Option(help="The external anchor file (GATEWAY_AUDIT_ANCHOR) to check against."),
    ] = None,
    tsa_ca: Annotated[
        Path | None,
        typer.Option(
            "--tsa-ca",
            "--tsa-cert",
            help="PEM bundle of the time-stamp authority's CA (default: GATEWAY_AUDIT_TSA_CA); "
            "with it, every anchored checkpoint needs a time-stamp that chains to it.",
        ),
    ] = None,
) -> None:
    """Walk the audit chain and its checkpoints; exit 1 and name the first broken link."""
    settings = load_settings()
    given = json.loads(jwks.read_text()) if jwks else None
    bundle = tsa_ca or settings.audit_tsa_ca
    try:
        anchored = read_anchor(anchors) if anchors else None
        trust = TsaTrust.from_file(bundle) if bundle and anchors else None
    except AnchorError as exc:
        raise fail(f"cannot read the anchor: {exc.message}") from None

    async def work(store: Store) -> VerifyReport:
        keys = given if given is not None else await _mirrored_jwks(store)
        verifier = JwksCheckpointVerifier(keys) if keys["keys"] else None
        return await verify(store, verifier, now=_now(), anchors=anchored, tsa=trust)

    report = _run(settings, work)
    if as_json:
        print_json(report.as_dict())
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(EXIT_REFUSED)


async def _mirrored_jwks(store: Store) -> dict[str, Any]:
    async with store.read() as conn:
        return await partners_repo.council_jwks(conn, use="sig")


def _print_report(report: VerifyReport) -> None:
    rows = [
        ("entries", report.entries),
        ("head", f"{report.head_seq} {report.head_hash[:16]}…"),
        ("checkpoints verified", report.checkpoints),
        ("last checkpoint", report.last_checkpoint_seq),
        ("signatures checked", "yes" if report.signatures_checked else "no (no council keys)"),
        ("awaiting sealing", report.pending),
        ("anchored checkpoints checked", report.anchors_checked),
    ]
    if report.broken:
        rows.append(("BROKEN", f"{report.broken.code} at seq {report.broken.seq}"))
        rows.append(("", report.broken.message))
    rows += [("note", note) for note in report.notes]
    print_table("audit chain: " + ("OK" if report.ok else "BROKEN"), ["", ""], rows)


@audit_app.command("checkpoint")
def audit_checkpoint(
    signing_key: Annotated[
        Path, typer.Option(help="The council's private signing JWK (JSON with a kid).")
    ],
) -> None:
    """Seal pending entries and sign a checkpoint at the head now."""
    settings = load_settings()
    try:
        data = json.loads(signing_key.read_text())
        key = jose.import_private_jwk(data)
        signer = FileSigner(str(data.get("kid") or key.thumbprint()), key)
    except (OSError, ValueError, jose.JoseFailure) as exc:
        raise fail(
            f"{signing_key.name}: not a private EC or OKP JWK ({type(exc).__name__})"
        ) from None

    async def work(store: Store) -> int:
        return await audit.checkpoint(store, signer, at=_now(), anchor=checkpoint_anchor(settings))

    seq = _run(settings, work)
    typer.echo(f"checkpoint signed at seq {seq}" if seq else "the audit log is empty")


@retention_app.command("run")
def retention_run(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report only; change nothing.")
    ] = False,
    as_json: JsonFlag = False,
    actor: ActorOption = None,
) -> None:
    """Purge envelopes past retain_until, and records past both retain_until and the schedule."""
    settings = load_settings()

    async def work(store: Store) -> retention.RetentionReport:
        return await retention.run(
            store,
            now=_now(),
            records_retention=settings.records_retention,
            actor=_admin(actor),
            dry_run=dry_run,
        )

    report = _run(settings, work)
    if as_json:
        print_json(report.as_dict())
        return
    verb = "would purge" if dry_run else "purged"
    print_table(
        f"retention ({verb})",
        ["what", "count"],
        [
            ("envelopes and held records", len(report.envelopes_purged)),
            ("disclosure records past retain_until and the schedule", len(report.metadata_deleted)),
            ("records past the schedule kept for retain_until", report.records_kept_past_schedule),
            ("Article 19 notices never sent", len(report.unsent_notices_deleted)),
            ("idempotency keys", report.idempotency_keys_deleted),
        ],
    )


class ReportFormat(enum.StrEnum):
    """Formats of the plain-English subject access report."""

    PDF = "pdf"
    HTML = "html"
    JSON = "json"


def _write_report(
    chosen: ReportFormat,
    output: Path | None,
    *,
    settings: Settings,
    protection: Protection,
    nhs_number: str | None,
    local_id: str | None,
    actor: str | None,
) -> None:
    """Build the plain-English report and write it to the file (or stdout)."""

    async def work(store: Store) -> SubjectAccessReport:
        return await subject_access_report(
            store,
            protection,
            nhs_number=nhs_number,
            local_id=local_id,
            actor=_admin(actor),
            at=_now(),
        )

    report = _run(settings, work)
    if chosen is ReportFormat.PDF:
        data = to_pdf(report)
    elif chosen is ReportFormat.HTML:
        data = to_html(report).encode()
    else:
        data = (json.dumps(report.as_dict(), indent=2) + "\n").encode()
    if output is None:
        sys.stdout.write(data.decode())
        return
    output.write_bytes(data)
    typer.echo(f"wrote {chosen} report of {len(report.shared)} disclosure(s) to {output}")


def subject_report_command(
    *,
    nhs_number: Annotated[str | None, typer.Option(help="The person's NHS number.")] = None,
    local_id: Annotated[str | None, typer.Option(help="The person's local person id.")] = None,
    as_json: JsonFlag = False,
    actor: ActorOption = None,
    report_format: Annotated[
        ReportFormat | None,
        typer.Option("--format", help="A plain-English report for the person: pdf, html, json."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Write the --format report to this file.")
    ] = None,
) -> None:
    """Every disclosure about one person (subject access): when, to whom, why, what."""
    if not nhs_number and not local_id:
        raise fail("give --nhs-number or --local-id", code=2)
    if report_format is ReportFormat.PDF and output is None:
        raise fail("--format pdf needs --output FILE", code=2)
    if output is not None and report_format is None:
        raise fail("--output needs --format pdf, html or json", code=2)
    settings = load_settings()
    protection = Protection.from_dir(settings.keys_dir)
    if report_format is not None:
        _write_report(
            report_format,
            output,
            settings=settings,
            protection=protection,
            nhs_number=nhs_number,
            local_id=local_id,
            actor=actor,
        )
        return

    async def work(store: Store) -> list[dict[str, Any]]:
        found = await subject_report(
            store,
            protection,
            nhs_number=nhs_number,
            local_id=local_id,
            actor=_admin(actor),
            at=_now(),
        )
        return [line.as_dict() for line in found]

    lines = _run(settings, work)
    if as_json:
        print_json({"disclosures": lines})
        return
    columns = ["date", "partner", "agreement", "purpose", "lawful basis", "fields sent", "status"]
    rows = [
        (
            line["date"][:10],
            line["partner"],
            f"{line['agreement_id']} v{line['agreement_version']}",
            line["purpose"],
            line["lawful_basis"],
            ", ".join(line["fields_sent"]),
            line["status"],
        )
        for line in lines
    ]
    print_table(f"{len(lines)} disclosure(s) about this person", columns, rows)
