"""`gateway-admin keys ...`: the council's own signing keys (GATEWAY_KEYS_DIR).

Private keys stay in the keyring directory; after every change the public halves of all keys
are mirrored into the database, so any gateway process can verify audit checkpoints with them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from gateway import audit
from gateway.cli.common import print_json, print_table
from gateway.cli.context import (
    ActorOption,
    AdminContext,
    JsonFlag,
    parse_duration,
    run_async,
    utc_now,
)
from gateway.keys import CouncilKey, CouncilKeyring
from gateway.settings import load_settings
from gateway.store import partners_repo

keys_app = typer.Typer(
    name="keys",
    help="The council's signing keys: generate, list, rotate, retire.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class SigningAlg(StrEnum):
    """Signing algorithms the council may use."""

    ES256 = "ES256"
    ED25519 = "Ed25519"


async def _mirror_and_audit(
    ctx: AdminContext, action: str, key: CouncilKey, details: dict[str, Any]
) -> None:
    """Mirror every key's public half into the store, and audit the change, in one transaction."""
    async with ctx.store.transaction() as conn:
        for each in ctx.keyring().list():
            await partners_repo.mirror_council_key(
                conn,
                kid=each.kid,
                alg=each.alg,
                public_jwk=each.public_jwk,
                status=each.status,
                at=each.created_at,
                published_until=each.published_until,
            )
        await audit.append(conn, ctx.actor, action, at=ctx.now, targets={"kid": key.kid},
                           details={"alg": key.alg, "status": key.status, **details})  # fmt: skip
        await audit.seal(conn, at=ctx.now)


def _describe(key: CouncilKey) -> dict[str, Any]:
    data = key.to_dict()
    data.pop("public_jwk")
    return data


def _report(key: CouncilKey, verb: str, json_output: bool) -> None:
    if json_output:
        print_json(_describe(key))
    else:
        typer.echo(f"{verb} {key.alg} key {key.kid} (now {key.status})")


@keys_app.command("generate", epilog="Example: gateway-admin keys generate --alg ES256")
def generate(
    alg: Annotated[SigningAlg, typer.Option(help="Signing algorithm.")] = SigningAlg.ES256,
    actor: ActorOption = None,
    json_output: JsonFlag = False,
) -> None:
    """A new signing key: active if there is none, else pending (published ahead of rotation)."""

    async def work(ctx: AdminContext) -> CouncilKey:
        key = ctx.keyring().generate(alg.value, ctx.now)
        await _mirror_and_audit(ctx, "council_key.generated", key, {})
        return key

    _report(run_async(work, actor=actor), "generated", json_output)


@keys_app.command("list", epilog="Example: gateway-admin keys list --json")
def list_command(json_output: JsonFlag = False) -> None:
    """Every council key ever generated, its status, and whether it is in the public JWKS now."""
    now = utc_now()
    keys = CouncilKeyring(load_settings().keys_dir).list()
    rows = [{**_describe(k), "published": k.published_at(now)} for k in keys]
    if json_output:
        print_json(rows)
        return
    table = [
        (r["kid"], r["alg"], r["status"], "yes" if r["published"] else "no",
         r["created_at"][:16], (r["published_until"] or "")[:16])
        for r in rows
    ]  # fmt: skip
    print_table(
        f"{len(rows)} council key(s)",
        ("kid", "alg", "status", "published", "created", "published until"),
        table,
    )


@keys_app.command("rotate", epilog="Example: gateway-admin keys rotate --overlap P30D")
def rotate(
    overlap: Annotated[
        str, typer.Option(help="How long the old key stays published (ISO 8601 duration).")
    ] = "P30D",
    actor: ActorOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Make a new key active (the newest pending one, or a fresh one); the old one is superseded."""
    keep = parse_duration(overlap, "--overlap")

    async def work(ctx: AdminContext) -> CouncilKey:
        key = ctx.keyring().rotate(ctx.now, keep)
        await _mirror_and_audit(ctx, "council_key.rotated", key,
                                {"overlap_seconds": int(keep.total_seconds())})  # fmt: skip
        return key

    _report(run_async(work, actor=actor), "rotated to", json_output)


@keys_app.command("retire", epilog="Example: gateway-admin keys retire 3Xk1...Qw")
def retire(
    kid: Annotated[str, typer.Argument(help="The key id (see keys list).")],
    actor: ActorOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Withdraw a superseded or pending key for good: unpublished, private key file deleted."""

    async def work(ctx: AdminContext) -> CouncilKey:
        key = ctx.keyring().retire(kid, ctx.now)
        await _mirror_and_audit(ctx, "council_key.retired", key, {})
        return key

    _report(run_async(work, actor=actor), "retired", json_output)
