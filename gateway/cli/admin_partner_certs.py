"""`gateway-admin partners certs ...`: partners' S/MIME certificates for secure email."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from gateway.application.partner_cert_admin import (
    RevokedPartnerCert,
    add_partner_cert,
    partner_certs,
    revoke_partner_cert,
)
from gateway.cli.common import fail, print_json, print_table
from gateway.cli.context import (
    ActorOption,
    AdminContext,
    JsonFlag,
    ReasonOption,
    check_reason,
    run_async,
)
from gateway.partner_certs import PartnerCertificate, load_ca_bundle

certs_app = typer.Typer(
    name="certs",
    help="A partner's S/MIME certificates: email to it is then S/MIME, encrypted to one.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

PartnerId = Annotated[str, typer.Argument(help="The partner id, e.g. dwp-counter-fraud.")]


def cert_dict(cert: PartnerCertificate, now: Any) -> dict[str, Any]:
    """What `list` and `add` show of a certificate."""
    return {**cert.to_dict(), "usable": cert.usable_at(now)}


@certs_app.command(
    "add", epilog="Example: gateway-admin partners certs add dwp-counter-fraud --cert dwp.pem"
)
def certs_add(
    partner_id: PartnerId,
    *,
    cert: Annotated[Path, typer.Option(help="The partner's PEM certificate (then any chain).")],
    actor: ActorOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Register a partner's certificate: RSA, valid now, usable for email encryption, and
    chained to GATEWAY_SMIME_CA_BUNDLE when that is set."""
    try:
        pem = cert.read_bytes()
    except OSError as exc:
        raise fail(f"{cert}: {exc.strerror or type(exc).__name__}") from None

    async def work(ctx: AdminContext) -> dict[str, Any]:
        bundle = ctx.settings.smime_ca_bundle
        trusted = load_ca_bundle(bundle) if bundle else ()
        added = await add_partner_cert(
            ctx.store, partner_id, pem, actor=ctx.actor, at=ctx.now, trusted=trusted
        )
        return cert_dict(added, ctx.now)

    added = run_async(work, actor=actor)
    if json_output:
        print_json(added)
        return
    typer.echo(
        f"registered certificate {added['fingerprint']} for {partner_id} "
        f"(until {added['not_after'][:10]}): email to it is now S/MIME"
    )


@certs_app.command("list", epilog="Example: gateway-admin partners certs list dwp-counter-fraud")
def certs_list(partner_id: PartnerId, json_output: JsonFlag = False) -> None:
    """Every certificate the partner registered, revoked and expired ones included."""

    async def work(ctx: AdminContext) -> list[dict[str, Any]]:
        return [cert_dict(c, ctx.now) for c in await partner_certs(ctx.store, partner_id)]

    certs = run_async(work)
    if json_output:
        print_json(certs)
        return
    print_certs(f"{len(certs)} certificate(s) of {partner_id}", certs)


def print_certs(title: str, certs: list[dict[str, Any]]) -> None:
    """A table of certificates as `cert_dict` gives them (`list`, and `partners show`)."""
    print_table(
        title,
        ("fingerprint", "subject", "not after", "status", "usable"),
        [
            (c["fingerprint"][:16], c["subject"], c["not_after"][:10], c["status"], c["usable"])
            for c in certs
        ],
    )


@certs_app.command(
    "revoke",
    epilog="Example: gateway-admin partners certs revoke dwp-counter-fraud 3f2a... "
    '--reason "key compromised"',
)
def certs_revoke(
    partner_id: PartnerId,
    fingerprint: Annotated[str, typer.Argument(help="SHA-256 fingerprint (hex) from `list`.")],
    reason: ReasonOption,
    actor: ActorOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Revoke a certificate for good: no message is encrypted to it again; with none left the
    partner's email waits (partner_cert_revoked), never falling back to TLS only."""
    why = check_reason(reason)

    async def work(ctx: AdminContext) -> RevokedPartnerCert:
        return await revoke_partner_cert(
            ctx.store, partner_id, fingerprint, why, actor=ctx.actor, at=ctx.now
        )

    result = run_async(work, actor=actor)
    if json_output:
        print_json(dataclasses.asdict(result))
    else:
        typer.echo(f"revoked certificate {result.fingerprint} of {partner_id}")
    if result.usable_left == 0:
        Console(stderr=True).print(
            f"warning: {partner_id} has no usable certificate left; email to it is not sent "
            "until a new one is added",
            highlight=False,
            markup=False,
            style="yellow",
        )
