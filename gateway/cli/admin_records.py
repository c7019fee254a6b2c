"""`gateway-admin ropa` and `agreements register`: the records an auditor asks for first."""

from __future__ import annotations

import csv
import enum
import sys
from dataclasses import asdict
from datetime import timedelta
from typing import Annotated, Any

import typer

from gateway.application.disclosure_log import day_start
from gateway.application.records_of_processing import (
    ProcessingRecord,
    RegisterLine,
    agreement_register,
    record_of_processing,
)
from gateway.cli.common import print_json, print_table
from gateway.cli.context import (
    AdminContext,
    JsonFlag,
    parse_date,
    run_async,
    usage,
)

DEFAULT_PERIOD = timedelta(days=365)


class RopaFormat(enum.StrEnum):
    """Output formats of the record of processing."""

    MD = "md"
    JSON = "json"
    CSV = "csv"


def register(app: typer.Typer, agreements_app: typer.Typer) -> None:
    """Add `ropa` to gateway-admin and `register` to its agreements group."""
    app.command("ropa", epilog="Example: gateway-admin ropa --from 2026-04-01 --format csv")(
        ropa_command
    )
    agreements_app.command("register", epilog="Example: gateway-admin agreements register --csv")(
        register_command
    )


def ropa_command(
    *,
    output: Annotated[
        RopaFormat, typer.Option("--format", help="md, json or csv.")
    ] = RopaFormat.MD,
    from_: Annotated[
        str | None,
        typer.Option("--from", help="Count disclosures from this day (default: a year ago)."),
    ] = None,
    to: Annotated[
        str | None, typer.Option("--to", help="Count disclosures to this day (default: today).")
    ] = None,
) -> None:
    """The data-sharing section of the record of processing (UK GDPR Article 30)."""

    async def work(ctx: AdminContext) -> ProcessingRecord:
        last = parse_date(to, "--to") if to else ctx.today
        first = parse_date(from_, "--from") if from_ else last - DEFAULT_PERIOD
        if last < first:
            raise usage("--to is before --from")
        return await record_of_processing(
            ctx.store, since=day_start(first), before=day_start(last + timedelta(days=1))
        )

    found = run_async(work)
    if output is RopaFormat.JSON:
        print_json(ropa_document(found))
    elif output is RopaFormat.CSV:
        _ropa_csv(found)
    else:
        sys.stdout.write(ropa_markdown(found))


def ropa_document(found: ProcessingRecord) -> dict[str, Any]:
    """The record as one JSON document."""
    return {
        "period": {"from": found.since.isoformat(), "before": found.before.isoformat()},
        "agreements": [
            {
                **asdict(line.entry),
                "disclosed": line.disclosed,
                "by_status": dict(line.by_status),
                "by_purpose": dict(line.by_purpose),
            }
            for line in found.lines
        ],
        "not_described": list(found.not_described),
    }


def _flat(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return "; ".join(str(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def _ropa_csv(found: ProcessingRecord) -> None:
    rows = ropa_document(found)["agreements"]
    if not rows:
        return
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(list(rows[0]))
    for row in rows:
        writer.writerow([_flat(v) for v in row.values()])


def ropa_markdown(found: ProcessingRecord) -> str:
    """The record as a Markdown document for the council's Article 30 record."""
    period = f"{found.since.date().isoformat()} to {(found.before.date() - timedelta(days=1))}"
    out = [f"# Record of processing: data sharing\n\nDisclosures counted from {period}.\n"]
    for line in found.lines:
        entry = asdict(line.entry)
        out.append(f"\n## {entry['agreement']} v{entry['version']}: {entry['title']}\n\n")
        out.append("| | |\n| --- | --- |\n")
        facts = {
            **{k: v for k, v in entry.items() if k not in {"agreement", "version", "title"}},
            "disclosed in the period": line.disclosed,
            "by status": dict(line.by_status),
            "by purpose": dict(line.by_purpose),
        }
        out += [f"| {key.replace('_', ' ')} | {_flat(value)} |\n" for key, value in facts.items()]
    if found.not_described:
        out.append(f"\nNot described (stored document unreadable): {_flat(found.not_described)}\n")
    return "".join(out)


def register_command(
    *,
    csv_output: Annotated[bool, typer.Option("--csv", help="CSV with a header row.")] = False,
    json_output: JsonFlag = False,
) -> None:
    """Every agreement: partner, purposes, basis, status, dates, review, DPIA and sign-off."""

    async def work(ctx: AdminContext) -> list[RegisterLine]:
        return await agreement_register(ctx.store, today=ctx.today)

    lines = [line.as_dict() for line in run_async(work)]
    if json_output:
        print_json(lines)
        return
    if csv_output:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        if lines:
            writer.writerow(list(lines[0]))
        for line in lines:
            writer.writerow([_flat(v) for v in line.values()])
        return
    columns = ("agreement", "partner_name", "status", "effective_to", "review_due", "dpia")
    print_table(
        f"{len(lines)} agreement(s)",
        (*columns, "sign-off"),
        [[*(line[c] for c in columns), "yes" if line["sign_off"] else "NO"] for line in lines],
    )
