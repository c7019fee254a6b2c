"""`gateway-admin clients ...`: internal systems that may submit disclosures, and their tokens.

A token is 256 random bits, printed once when a client is added or rotated and stored only as
a hash: nobody can read it back, so a lost token is replaced with `clients rotate`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway import audit
from gateway.agreement_lifecycle import AgreementNotFoundError
from gateway.cli.common import print_json, print_table
from gateway.cli.context import ActorOption, AdminContext, JsonFlag, run_async, usage
from gateway.clients import hash_token, new_token
from gateway.errors import ConflictError, NotFoundError
from gateway.store import agreements_repo, clients_repo

clients_app = typer.Typer(
    name="clients",
    help="Internal systems allowed to submit disclosures: add, list, revoke, rotate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$")
ClientName = Annotated[str, typer.Argument(help="The client system's name, e.g. mosaic-childrens.")]


class ClientNotFoundError(NotFoundError):
    """No client with this name is registered."""

    code = "client_not_found"


def _agreement_ids(text: str) -> list[str]:
    ids = sorted({part.strip() for part in text.split(",") if part.strip()})
    if not ids:
        raise usage("--agreements: give at least one agreement id")
    return ids


def _client_dict(client: clients_repo.StoredClient) -> dict[str, Any]:
    return {
        "name": client.name,
        "agreements": sorted(client.allowed_agreements),
        "status": client.status,
        "created_at": client.created_at.isoformat(),
        "rotated_at": client.rotated_at.isoformat() if client.rotated_at else None,
    }


def _print_token(name: str, token: str, json_output: bool, verb: str) -> None:
    if json_output:
        print_json({"name": name, "token": token})
        return
    typer.echo(f"client {name} {verb}. Its token, shown this once (keep it in a secret store):")
    typer.echo(token)


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
    if not _NAME.match(name):
        raise usage("client name: letters, digits, '.', '_' and '-' only (at most 120)")
    ids = _agreement_ids(agreements)
    token = new_token()

    async def work(ctx: AdminContext) -> None:
        async with ctx.store.transaction() as conn:
            if await clients_repo.get(conn, name) is not None:
                raise ConflictError(f"a client named {name!r} exists", code="client_exists")
            for agreement_id in ids:
                if await agreements_repo.get(conn, agreement_id) is None:
                    raise AgreementNotFoundError(f"no agreement {agreement_id!r} is stored")
            await clients_repo.create(conn, name, token_hash=hash_token(token),
                                      allowed_agreements=frozenset(ids), at=ctx.now)  # fmt: skip
            await audit.append(conn, ctx.actor, "client.added", at=ctx.now,
                               targets={"client": name}, details={"agreements": ids})  # fmt: skip
            await audit.seal(conn, at=ctx.now)

    run_async(work, actor=actor)
    _print_token(name, token, json_output, "added")


@clients_app.command("list", epilog="Example: gateway-admin clients list --json")
def list_command(json_output: JsonFlag = False) -> None:
    """Every client system, its agreements and status (tokens are never shown again)."""

    async def work(ctx: AdminContext) -> list[dict[str, Any]]:
        async with ctx.store.read() as conn:
            return [_client_dict(c) for c in await clients_repo.all_clients(conn)]

    rows = run_async(work)
    if json_output:
        print_json(rows)
        return
    table = [
        (r["name"], ", ".join(r["agreements"]), r["status"], r["created_at"][:16],
         (r["rotated_at"] or "")[:16])
        for r in rows
    ]  # fmt: skip
    print_table(
        f"{len(rows)} client(s)",
        ("name", "agreements", "status", "created", "token rotated"),
        table,
    )


async def _existing(conn: AsyncConnection, name: str) -> clients_repo.StoredClient:
    client = await clients_repo.get(conn, name)
    if client is None:
        raise ClientNotFoundError(f"no client named {name!r}")
    if client.status == "revoked":
        raise ConflictError(f"client {name!r} is revoked", code="client_revoked")
    return client


@clients_app.command("revoke", epilog="Example: gateway-admin clients revoke old-system")
def revoke(name: ClientName, actor: ActorOption = None, json_output: JsonFlag = False) -> None:
    """Stop a client system for good: its token is refused from now on."""

    async def work(ctx: AdminContext) -> None:
        async with ctx.store.transaction() as conn:
            await _existing(conn, name)
            await clients_repo.set_status(conn, name, "revoked")
            await audit.append(conn, ctx.actor, "client.revoked", at=ctx.now,
                               targets={"client": name})  # fmt: skip
            await audit.seal(conn, at=ctx.now)

    run_async(work, actor=actor)
    if json_output:
        print_json({"name": name, "status": "revoked"})
    else:
        typer.echo(f"client {name} revoked: its token no longer works")


@clients_app.command("rotate", epilog="Example: gateway-admin clients rotate mosaic-childrens")
def rotate(name: ClientName, actor: ActorOption = None, json_output: JsonFlag = False) -> None:
    """Issue a new token for a client (printed once); the old token stops working at once."""
    token = new_token()

    async def work(ctx: AdminContext) -> None:
        async with ctx.store.transaction() as conn:
            await _existing(conn, name)
            await clients_repo.rotate(conn, name, token_hash=hash_token(token), at=ctx.now)
            await audit.append(conn, ctx.actor, "client.rotated", at=ctx.now,
                               targets={"client": name})  # fmt: skip
            await audit.seal(conn, at=ctx.now)

    run_async(work, actor=actor)
    _print_token(name, token, json_output, "has a new token")
