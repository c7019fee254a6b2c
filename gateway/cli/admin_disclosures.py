"""`gateway-admin disclosures list`: the disclosure log per agreement and per partner.

Output is written line by line as pages arrive from the store, so a million disclosures cost
no more memory than one page: a JSON array with one object per line, CSV, or a plain listing.
"""

from __future__ import annotations

import csv
import json
import sys
from typing import Annotated, Any, Literal, TextIO

import typer

from gateway.application.disclosure_log import (
    COLUMNS,
    DisclosureLogQuery,
    log_line,
    read_disclosure_log,
)
from gateway.cli.context import AdminContext, JsonFlag, parse_date, run_async, usage
from gateway.store.disclosure_model import Status

disclosures_app = typer.Typer(
    name="disclosures",
    help="The disclosure log: what went to whom, when, under which agreement.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

Format = Literal["table", "json", "csv"]
TEXT_COLUMNS = ("date", "id", "agreement", "purpose", "partner", "status", "approver", "fields")


@disclosures_app.command(
    "list",
    epilog="Example: gateway-admin disclosures list --partner kent-police --from 2026-01-01 --csv",
)
def list_command(
    *,
    agreement: Annotated[str | None, typer.Option(help="Only this agreement id.")] = None,
    partner: Annotated[str | None, typer.Option(help="Only this partner id.")] = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="From this day (YYYY-MM-DD, UTC), inclusive.")
    ] = None,
    to: Annotated[
        str | None, typer.Option("--to", help="To this day (YYYY-MM-DD, UTC), inclusive.")
    ] = None,
    status: Annotated[Status | None, typer.Option(help="Only disclosures in this status.")] = None,
    json_output: JsonFlag = False,
    csv_output: Annotated[bool, typer.Option("--csv", help="CSV with a header row.")] = False,
) -> None:
    """Disclosures oldest first: ids, dates, agreement version, purpose, partner, field names."""
    if json_output and csv_output:
        raise usage("give --json or --csv, not both")
    from_date = parse_date(from_, "--from") if from_ else None
    to_date = parse_date(to, "--to") if to else None
    if from_date and to_date and to_date < from_date:
        raise usage("--to is before --from")
    query = DisclosureLogQuery(
        agreement=agreement,
        partner=partner,
        status=status.value if status else None,
        from_date=from_date,
        to_date=to_date,
    )
    chosen: Format = "json" if json_output else "csv" if csv_output else "table"
    run_async(lambda ctx: _stream(ctx, query, chosen, sys.stdout))


async def _stream(ctx: AdminContext, query: DisclosureLogQuery, chosen: Format, out: TextIO) -> int:
    """Write each disclosure as it arrives; returns how many."""
    count = 0
    writer = csv.writer(out, lineterminator="\n")
    if chosen == "json":
        out.write("[")
    elif chosen == "csv":
        writer.writerow(COLUMNS)
    else:
        out.write("\t".join(TEXT_COLUMNS) + "\n")
    async for logged in read_disclosure_log(ctx.store, query):
        line = log_line(logged)
        if chosen == "json":
            out.write(("," if count else "") + "\n" + json.dumps(line))
        elif chosen == "csv":
            writer.writerow([_cell(line[c]) for c in COLUMNS])
        else:
            out.write("\t".join(_text(line)) + "\n")
        count += 1
    if chosen == "json":
        out.write("\n]\n")
    elif chosen == "table":
        out.write(f"{count} disclosure(s)\n")
    return count


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return str(value)


def _text(line: dict[str, Any]) -> list[str]:
    return [
        line["date"][:10],
        line["id"],
        f"{line['agreement']} v{line['agreement_version']}",
        line["purpose"],
        line["partner"],
        line["status"],
        line["approver"] or "-",
        ", ".join(line["fields_sent"]),
    ]
