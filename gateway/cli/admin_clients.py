"""`gateway-admin clients ...`: internal systems that may submit disclosures, and their tokens.

A token is 256 random bits, printed once when a client is added or rotated and stored only as
a hash: nobody can read it back, so a lost token is replaced with `clients rotate`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import TypeAdapter, ValidationError

from gateway.application.client_systems import (
    IssuedToken,
    add_client,
    client_name_valid,
    list_clients,
    revoke_client,
    rotate_client_token,
    set_client_certificate,
)
from gateway.cli.common import print_json, print_table
from gateway.cli.context import ActorOption, AdminContext, JsonFlag, run_async, usage
from gateway.clients import pem_certificate_sha256
from gateway.store.clients_repo import StoredClient

clients_app = typer.Typer(
    name="clients",
    help="Internal systems allowed to submit disclosures: add, list, revoke, rotate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ClientName = Annotated[str, typer.Argument(help="The client system's name, e.g. mosaic-childrens.")]
ExpiresOption = Annotated[
    str | None,
    typer.Option("--expires", help="The token stops working after this ISO 8601 duration (P90D)."),
]
CertOption = Annotated[
    Path | None,
    typer.Option("--cert", help="PEM client certificate it may authenticate with over mutual TLS."),
]


def _duration(text: str | None) -> timedelta | None:
    if text is None:
        return None
    try:
        value = TypeAdapter(timedelta).validate_python(text)
    except ValidationError:
        raise usage("--expires: an ISO 8601 duration such as P90D or PT12H") from None
    if value <= timedelta(0):
        raise usage("--expires: must be positive")
    return value


def _fingerprint(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return pem_certificate_sha256(path.read_bytes())
    except (OSError, ValueError):
        raise usage(f"--cert: {path} is not a readable PEM certificate") from None


def _agreement_ids(text: str) -> list[str]:
    ids = sorted({part.strip() for part in text.split(",") if part.strip()})
    if not ids:
        raise usage("--agreements: give at least one agreement id")
    return ids


def _client_dict(client: StoredClient) -> dict[str, Any]:
    return {
        "name": client.name,
        "agreements": sorted(client.allowed_agreements),
        "status": client.status,
        "created_at": client.created_at.isoformat(),
        "rotated_at": client.rotated_at.isoformat() if client.rotated_at else None,
        "token_expires_at": (
            client.token_expires_at.isoformat() if client.token_expires_at else None
        ),
        "certificate": client.cert_sha256,
    }


def _print_token(issued: IssuedToken, json_output: bool, verb: str) -> None:
    if json_output:
        print_json({"name": issued.client, "token": issued.token})
        return
    typer.echo(
        f"client {issued.client} {verb}. Its token, shown this once (keep it in a secret store):"
    )
    typer.echo(issued.token)


@clients_app.command(
    "add", epilog="Example: gateway-admin clients add mosaic-childrens --agreements KM-NHS-LAC-001"
)
def add(
    name: ClientName,
    agreements: Annotated[
        str, typer.Option(help="Agreement ids it may submit under, comma-separated.")
    ],
    *,
    actor: ActorOption = None,
    json_output: JsonFlag = False,
    expires: ExpiresOption = None,
    cert: CertOption = None,
) -> None:
    """Register a client system and print its bearer token once."""
    if not client_name_valid(name):
        raise usage("client name: letters, digits, '.', '_' and '-' only (at most 120)")
    ids = _agreement_ids(agreements)
    expires_in, fingerprint = _duration(expires), _fingerprint(cert)

    async def work(ctx: AdminContext) -> IssuedToken:
        return await add_client(
            ctx.store,
            name,
            ids,
            actor=ctx.actor,
            at=ctx.now,
            expires_in=expires_in,
            cert_sha256=fingerprint,
        )

    _print_token(run_async(work, actor=actor), json_output, "added")


@clients_app.command("list", epilog="Example: gateway-admin clients list --json")
def list_command(json_output: JsonFlag = False) -> None:
    """Every client system, its agreements and status (tokens are never shown again)."""

    async def work(ctx: AdminContext) -> list[dict[str, Any]]:
        return [_client_dict(c) for c in await list_clients(ctx.store)]

    rows = run_async(work)
    if json_output:
        print_json(rows)
        return
    table = [
        (
            r["name"],
            ", ".join(r["agreements"]),
            r["status"],
            r["created_at"][:16],
            (r["rotated_at"] or "")[:16],
        )
        for r in rows
    ]
    print_table(
        f"{len(rows)} client(s)",
        ("name", "agreements", "status", "created", "token rotated"),
        table,
    )


@clients_app.command("revoke", epilog="Example: gateway-admin clients revoke old-system")
def revoke(name: ClientName, actor: ActorOption = None, json_output: JsonFlag = False) -> None:
    """Stop a client system for good: its token is refused from now on."""

    async def work(ctx: AdminContext) -> None:
        await revoke_client(ctx.store, name, actor=ctx.actor, at=ctx.now)

    run_async(work, actor=actor)
    if json_output:
        print_json({"name": name, "status": "revoked"})
    else:
        typer.echo(f"client {name} revoked: its token no longer works")


@clients_app.command("rotate", epilog="Example: gateway-admin clients rotate mosaic-childrens")
def rotate(
    name: ClientName,
    actor: ActorOption = None,
    json_output: JsonFlag = False,
    expires: ExpiresOption = None,
) -> None:
    """Issue a new token for a client (printed once); the old token stops working at once."""
    expires_in = _duration(expires)

    async def work(ctx: AdminContext) -> IssuedToken:
        return await rotate_client_token(
            ctx.store, name, actor=ctx.actor, at=ctx.now, expires_in=expires_in
        )

    _print_token(run_async(work, actor=actor), json_output, "has a new token")


@clients_app.command(
    "set-cert", epilog="Example: gateway-admin clients set-cert mosaic-childrens --cert c.pem"
)
def set_cert(
    name: ClientName,
    cert: CertOption = None,
    actor: ActorOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Map a client certificate to a client (without --cert: remove the mapping)."""
    fingerprint = _fingerprint(cert)

    async def work(ctx: AdminContext) -> None:
        await set_client_certificate(ctx.store, name, fingerprint, actor=ctx.actor, at=ctx.now)

    run_async(work, actor=actor)
    if json_output:
        print_json({"name": name, "certificate": fingerprint})
    else:
        typer.echo(f"client {name}: certificate {fingerprint or 'removed'}")
