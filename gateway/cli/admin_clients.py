"""`gateway-admin clients ...`: internal systems that may submit disclosures, and their tokens.

A token is 256 random bits, printed once when a client is added or rotated and stored only as
a hash: nobody can read it back, so a lost token is replaced with `clients rotate`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from gateway.application.client_systems import (
    IssuedToken,
    add_client,
    client_name_valid,
    list_clients,
    revoke_client,
    rotate_client_token,
)
from gateway.cli.common import print_json, print_table
from gateway.cli.context import ActorOption, AdminContext, JsonFlag, run_async, usage
from gateway.store.clients_repo import StoredClient

clients_app = typer.Typer(
    name="clients",
    help="Internal systems allowed to submit disclosures: add, list, revoke, rotate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ClientName = Annotated[str, typer.Argument(help="The client system's name, e.g. mosaic-childrens.")]


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
    actor: ActorOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Register a client system and print its bearer token once."""
    if not client_name_valid(name):
        raise usage("client name: letters, digits, '.', '_' and '-' only (at most 120)")
    ids = _agreement_ids(agreements)

    async def work(ctx: AdminContext) -> IssuedToken:
        return await add_client(ctx.store, name, ids, actor=ctx.actor, at=ctx.now)

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
def rotate(name: ClientName, actor: ActorOption = None, json_output: JsonFlag = False) -> None:
    """Issue a new token for a client (printed once); the old token stops working at once."""

    async def work(ctx: AdminContext) -> IssuedToken:
        return await rotate_client_token(ctx.store, name, actor=ctx.actor, at=ctx.now)

    _print_token(run_async(work, actor=actor), json_output, "has a new token")
