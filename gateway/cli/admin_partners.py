"""`gateway-admin partners ...`: the organisations we share with, and their public keys."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from gateway.application.partner_cert_admin import partner_certs
from gateway.application.partner_directory import list_partners, partner_profile
from gateway.application.partner_key_admin import (
    RetiredPartnerKey,
    RevokedPartnerKey,
    add_partner_key,
    partner_keys,
    retire_partner_key,
    revoke_partner_key,
    usable_at,
)
from gateway.catalog_sync import PARTNER_CONTACTS
from gateway.cli.admin_agreements import summary
from gateway.cli.admin_partner_certs import cert_dict, certs_app, print_certs
from gateway.cli.common import fail, print_json, print_table
from gateway.cli.context import (
    ActorOption,
    AdminContext,
    JsonFlag,
    ReasonOption,
    check_reason,
    parse_date,
    run_async,
    usage,
)
from gateway.partner_keys import PartnerKey, PartnerKeyError
from gateway.store.partners_repo import StoredPartner, StoredPartnerKey

partners_app = typer.Typer(
    name="partners",
    help="StoredPartner organisations and their registered public keys.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(
    name="keys",
    help="A partner's public keys: enc (we encrypt to it) and sig (verifies its receipts).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
partners_app.add_typer(keys_app, name="keys")
partners_app.add_typer(certs_app, name="certs")

PartnerId = Annotated[str, typer.Argument(help="The partner id, e.g. kent-police.")]


class KeyUseChoice(StrEnum):
    """What a partner key is for."""

    ENC = "enc"
    SIG = "sig"


def key_dict(row: StoredPartnerKey, now: datetime) -> dict[str, Any]:
    """A stored key's public facts, and whether it may be used now."""
    return {
        "kid": row.kid,
        "use": row.use,
        "alg": row.alg,
        "status": row.status,
        "not_before": row.not_before.isoformat(),
        "not_after": row.not_after.isoformat() if row.not_after else None,
        "usable_now": usable_at(row, now),
        "revoked_reason": row.revoked_reason,
    }


@partners_app.command("list", epilog="Example: gateway-admin partners list --json")
def list_command(json_output: JsonFlag = False) -> None:
    """Every partner, its channel, and whether it has a usable encryption key now."""

    async def work(ctx: AdminContext) -> list[dict[str, Any]]:
        listed = await list_partners(ctx.store)
        return [_partner_dict(p.partner, [key_dict(k, ctx.now) for k in p.keys]) for p in listed]

    rows = run_async(work)
    if json_output:
        print_json(rows)
        return
    print_table(
        f"{len(rows)} partner(s)",
        ("id", "name", "kind", "channel", "usable enc keys", "usable sig keys"),
        [
            (
                r["id"],
                r["name"],
                r["kind"],
                r["channel"],
                r["usable_enc_keys"],
                r["usable_sig_keys"],
            )
            for r in rows
        ],
    )


def _partner_dict(partner: StoredPartner, keys: list[dict[str, Any]]) -> dict[str, Any]:
    def usable(use: str) -> int:
        return sum(1 for k in keys if k["use"] == use and k["usable_now"])

    return {
        "id": partner.id,
        "name": partner.name,
        "kind": partner.kind,
        "status": partner.status,
        "channel": partner.channel,
        "target": dict(partner.target),
        **{name: getattr(partner, name) for name in PARTNER_CONTACTS},
        "usable_enc_keys": usable("enc"),
        "usable_sig_keys": usable("sig"),
    }


@partners_app.command("show", epilog="Example: gateway-admin partners show kent-police")
def show(partner_id: PartnerId, json_output: JsonFlag = False) -> None:
    """One partner: channel settings, contacts, keys, S/MIME certificates, and the agreements
    that name it."""

    async def work(ctx: AdminContext) -> dict[str, Any]:
        profile = await partner_profile(ctx.store, partner_id)
        keys = [key_dict(k, ctx.now) for k in profile.keys]
        shown = _partner_dict(profile.partner, keys)
        shown["keys"] = keys
        shown["certs"] = [cert_dict(c, ctx.now) for c in await partner_certs(ctx.store, partner_id)]
        shown["agreements"] = [summary(a) for a in profile.agreements]
        return shown

    data = run_async(work)
    if json_output:
        print_json(data)
        return
    facts = [(k, data[k]) for k in ("id", "name", "kind", "status", "channel")]
    facts += [
        (f"  {k}", json.dumps(v) if not isinstance(v, str) else v)
        for k, v in data["target"].items()
    ]
    facts += [(k, data[k]) for k in PARTNER_CONTACTS]  # blank when the catalog gives none
    print_table(data["id"], ("", ""), facts)
    _print_keys(data["id"], data["keys"])
    print_certs(f"S/MIME certificates of {data['id']}", data["certs"])
    print_table(
        "agreements",
        ("id", "version", "status", "review_due"),
        [(a["id"], a["version"], a["status"], a["review_due"]) for a in data["agreements"]],
    )


def _print_keys(partner_id: str, keys: list[dict[str, Any]]) -> None:
    rows = [
        (
            k["kid"],
            k["use"],
            k["alg"],
            k["status"],
            k["not_after"] or "",
            "yes" if k["usable_now"] else "no",
            k["revoked_reason"] or "",
        )
        for k in keys
    ]
    print_table(
        f"keys of {partner_id}",
        ("kid", "use", "alg", "status", "not after", "usable now", "revoked because"),
        rows,
    )


def _read_key(
    partner_id: str, use: str, jwk: Path | None, pem: Path | None, kid: str | None
) -> PartnerKey:
    """The key file as a validated public key (read before the database is opened)."""
    if (jwk is None) == (pem is None):
        raise usage("give exactly one of --jwk FILE or --pem FILE")
    path = jwk or pem
    assert path is not None
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise fail(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    try:
        if jwk is not None:
            document = json.loads(raw)
            if not isinstance(document, dict):
                raise fail(f"{path}: not a JSON Web Key (expected a JSON object)")
            return PartnerKey.from_jwk(partner_id, document, use=use, kid=kid)  # type: ignore[arg-type]
        return PartnerKey.from_pem(partner_id, raw, use=use, kid=kid)  # type: ignore[arg-type]
    except ValueError:
        raise fail(f"{path}: not valid JSON") from None
    except PartnerKeyError as exc:
        raise fail(f"{path}: {exc.message}") from None


@keys_app.command(
    "add",
    epilog="Example: gateway-admin partners keys add kent-police --use enc --jwk kp-enc.jwk.json "
    "--not-after 2027-12-31",
)
def keys_add(
    partner_id: PartnerId,
    *,
    use: Annotated[KeyUseChoice, typer.Option(help="enc: we encrypt to it; sig: receipts.")],
    jwk: Annotated[Path | None, typer.Option(help="A public JWK file (JSON).")] = None,
    pem: Annotated[Path | None, typer.Option(help="A PEM public key file.")] = None,
    kid: Annotated[
        str | None, typer.Option(help="Key id (default: the JWK's, or thumbprint).")
    ] = None,
    not_after: Annotated[
        str | None, typer.Option("--not-after", help="Last day the key may be used (YYYY-MM-DD).")
    ] = None,
    actor: ActorOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Register a partner's public key; private keys and weak keys are refused."""
    until = parse_date(not_after, "--not-after") if not_after else None
    key = _read_key(partner_id, use.value, jwk, pem, kid)
    if until is not None:
        end = datetime.combine(until + timedelta(days=1), time(0), tzinfo=UTC)
        try:
            key = PartnerKey.from_jwk(partner_id, key.jwk, use=key.use, kid=key.kid, not_after=end)
        except PartnerKeyError as exc:
            raise fail(exc.message) from None

    async def work(ctx: AdminContext) -> dict[str, Any]:
        row = await add_partner_key(ctx.store, key, actor=ctx.actor, at=ctx.now)
        return key_dict(row, ctx.now)

    added = run_async(work, actor=actor)
    if json_output:
        print_json({"partner": partner_id, **added})
        return
    typer.echo(f"registered {added['use']} key {added['kid']} ({added['alg']}) for {partner_id}")


@keys_app.command("list", epilog="Example: gateway-admin partners keys list kent-police --json")
def keys_list(partner_id: PartnerId, json_output: JsonFlag = False) -> None:
    """Every key the partner registered, revoked and expired ones included."""

    async def work(ctx: AdminContext) -> list[dict[str, Any]]:
        return [key_dict(k, ctx.now) for k in await partner_keys(ctx.store, partner_id)]

    keys = run_async(work)
    if json_output:
        print_json(keys)
    else:
        _print_keys(partner_id, keys)


@keys_app.command(
    "revoke",
    epilog="Example: gateway-admin partners keys revoke kent-police kp-enc-2026 "
    '--reason "key compromised"',
)
def keys_revoke(
    partner_id: PartnerId,
    kid: Annotated[str, typer.Argument(help="The key id to revoke.")],
    reason: ReasonOption,
    actor: ActorOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Revoke a partner key for good: never encrypted to, never accepted on a receipt again.

    Every undelivered envelope sealed to it is held as failed (partner_key_revoked), never
    sent, for its source system to resubmit. For a routine rotation use `retire`.
    """
    why = check_reason(reason)

    async def work(ctx: AdminContext) -> RevokedPartnerKey:
        return await revoke_partner_key(
            ctx.store, partner_id, kid, why, actor=ctx.actor, at=ctx.now
        )

    result = run_async(work, actor=actor)
    if json_output:
        print_json(dataclasses.asdict(result))
    else:
        typer.echo(f"revoked {result.use} key {kid} of {partner_id}")
        if result.held:
            typer.echo(
                f"{len(result.held)} undelivered envelope(s) sealed to it held as failed "
                "(partner_key_revoked): see `gateway-admin deadletters list`, resubmit them"
            )
    if result.usable_enc_keys == 0:
        Console(stderr=True).print(
            f"warning: {partner_id} now has no valid encryption key; disclosures to it are "
            "denied (partner_key_missing) until a new key is added",
            highlight=False,
            markup=False,
            style="yellow",
        )


@keys_app.command(
    "retire",
    epilog="Example: gateway-admin partners keys retire kent-police kp-enc-2026 --after 2027-01-31",
)
def keys_retire(
    partner_id: PartnerId,
    kid: Annotated[str, typer.Argument(help="The key id to retire.")],
    after: Annotated[
        str,
        typer.Option(
            "--after", help="Last day envelopes already sealed to it may go (YYYY-MM-DD)."
        ),
    ],
    actor: ActorOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Retire a key in a routine rotation: new envelopes use the partner's newer key now;
    those already sealed to this one may still go until the end of --after."""
    last_day = parse_date(after, "--after")
    until = datetime.combine(last_day + timedelta(days=1), time(0), tzinfo=UTC)

    async def work(ctx: AdminContext) -> RetiredPartnerKey:
        return await retire_partner_key(
            ctx.store, partner_id, kid, until, actor=ctx.actor, at=ctx.now
        )

    result = run_async(work, actor=actor)
    if json_output:
        print_json({**dataclasses.asdict(result), "until": result.until.isoformat()})
        return
    typer.echo(
        f"retired {result.use} key {kid} of {partner_id}: envelopes sealed to it may go until "
        f"{result.until.isoformat()}"
    )
