"""`gateway-admin`: the information governance team's and the on-call engineer's tool."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import typer

from gateway.cli.admin_agreements import agreements_app
from gateway.cli.admin_approvals import approvals_app
from gateway.cli.admin_approvers import approvers_app
from gateway.cli.admin_catalog import catalog_app
from gateway.cli.admin_clients import clients_app
from gateway.cli.admin_deadletters import deadletters_app
from gateway.cli.admin_disclosures import disclosures_app
from gateway.cli.admin_keys import keys_app
from gateway.cli.admin_optouts import optouts_app
from gateway.cli.admin_partners import partners_app
from gateway.cli.admin_policy import dictionary_command
from gateway.cli.admin_records import register as register_records
from gateway.cli.admin_store import register as register_store
from gateway.cli.admin_subject import subject_app
from gateway.cli.common import PRIVATE_UMASK, invoke
from gateway.logging import configure_logging

app = typer.Typer(
    name="gateway-admin",
    help="Administer Gatehouse: agreements, partners, keys, clients, approvals, audit.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Administer Gatehouse: agreements, partners, keys, clients, approvals, audit."""
    # Log lines (warnings and worse) on stderr: stdout is the command's answer, and `--json`
    # output must parse.
    configure_logging("console", "warning")


# Each area registers its own commands; keep one line per area, in this order.
# (registrations are added by the modules below as they are built)
app.command("dictionary")(dictionary_command)  # policy core: the data dictionary
app.add_typer(agreements_app, name="agreements")  # agreements: validate, list, show, diff, due...
app.add_typer(catalog_app, name="catalog")  # agreements: catalog apply
app.add_typer(partners_app, name="partners")  # partners: list, show, keys add|list|revoke
app.add_typer(keys_app, name="keys")  # council keys: generate, list, rotate, retire
app.add_typer(clients_app, name="clients")  # clients: add, list, revoke, rotate
app.add_typer(optouts_app, name="optouts")  # national data opt-out: import, status
app.add_typer(approvers_app, name="approvers")  # approvals: who may decide (add, list, remove)
app.add_typer(approvals_app, name="approvals")  # approvals: list, show, approve, reject
app.add_typer(deadletters_app, name="deadletters")  # delivery: dead letters list|replay
app.add_typer(disclosures_app, name="disclosures")  # records: the disclosure log
register_records(app, agreements_app)  # records: ropa, agreements register
app.add_typer(subject_app, name="subject")  # records: Article 19 notices (notify, notices)
register_store(app)  # store: db upgrade, audit verify|checkpoint, retention run, subject-report


def main(argv: Sequence[str] | None = None) -> int:
    """Run gateway-admin with these arguments; returns the exit code."""
    return invoke(app, argv)


def run() -> None:
    """Console-script entry point: every file this process creates is private to its user."""
    os.umask(PRIVATE_UMASK)
    sys.exit(main())
