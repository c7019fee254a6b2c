"""`gateway-admin keys ...`: the council's own keys (GATEWAY_KEYS_DIR): signing, SSH, S/MIME.

Private keys stay in the keyring directory; after every change the public halves of all keys
are mirrored into the database, so any gateway process can verify audit checkpoints with them.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from adapters.sftp import load_or_create_ssh_key, public_key_line
from gateway.application.council_key_rotation import (
    generate_council_key,
    retire_council_key,
    rotate_council_key,
)
from gateway.cli.common import fail, print_json, print_table
from gateway.cli.context import (
    ActorOption,
    AdminContext,
    JsonFlag,
    parse_duration,
    run_async,
    usage,
)
from gateway.clock import utc_now
from gateway.council_smime import install_council_smime, load_council_smime, self_signed
from gateway.council_smime import paths as smime_paths
from gateway.errors import GatewayError
from gateway.keys import CouncilKey, CouncilKeyring
from gateway.service import sftp_options
from gateway.settings import load_settings

keys_app = typer.Typer(
    name="keys",
    help="The council's signing keys: generate, list, rotate, retire; its SFTP key and S/MIME "
    "certificate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class SigningAlg(StrEnum):
    """Signing algorithms the council may use."""

    ES256 = "ES256"
    EDDSA = "EdDSA"
    ED25519 = "Ed25519"  # RFC 9864's name for the same key; the key is published as EdDSA


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
        return await generate_council_key(
            ctx.store, ctx.keyring(), alg.value, actor=ctx.actor, at=ctx.now
        )

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
        (
            r["kid"],
            r["alg"],
            r["status"],
            "yes" if r["published"] else "no",
            r["created_at"][:16],
            (r["published_until"] or "")[:16],
        )
        for r in rows
    ]
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
        return await rotate_council_key(ctx.store, ctx.keyring(), keep, actor=ctx.actor, at=ctx.now)

    _report(run_async(work, actor=actor), "rotated to", json_output)


@keys_app.command("retire", epilog="Example: gateway-admin keys retire 3Xk1...Qw")
def retire(
    kid: Annotated[str, typer.Argument(help="The key id (see keys list).")],
    actor: ActorOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Withdraw a superseded or pending key for good: unpublished, private key file deleted."""

    async def work(ctx: AdminContext) -> CouncilKey:
        return await retire_council_key(ctx.store, ctx.keyring(), kid, actor=ctx.actor, at=ctx.now)

    _report(run_async(work, actor=actor), "retired", json_output)


@keys_app.command("sftp", epilog="Example: gateway-admin keys sftp --json")
def sftp_key(json_output: JsonFlag = False) -> None:
    """The council's SSH key for SFTP partners (made on first use): the line they install."""
    options = sftp_options(load_settings())
    key = load_or_create_ssh_key(options.client_key)
    shown = {
        "public_key": public_key_line(key),
        "fingerprint": key.get_fingerprint(),
        "username": options.username,
    }
    if json_output:
        print_json(shown)
        return
    typer.echo(f"{shown['public_key']}\n{shown['fingerprint']} (default login {options.username})")


@keys_app.command(
    "smime",
    epilog="Example: gateway-admin keys smime --cert council-smime.pem --key council-smime.key",
)
def smime_certificate(
    cert: Annotated[
        Path | None, typer.Option(help="Install this CA-issued PEM certificate (then chain).")
    ] = None,
    key: Annotated[Path | None, typer.Option(help="Its PEM private key (with --cert).")] = None,
    self_signed_cert: Annotated[
        bool,
        typer.Option(
            "--self-signed", help="Make a self-signed one for GATEWAY_SMTP_FROM (trials)."
        ),
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """The council's S/MIME certificate, which signs email to S/MIME partners: show or install."""
    settings = load_settings()
    cert_path, key_path = smime_paths(
        settings.keys_dir, settings.smime_cert_file, settings.smime_key_file
    )
    now = utc_now()
    try:
        if cert is not None or key is not None:
            if cert is None or key is None:
                raise usage("--cert and --key go together")
            smime = install_council_smime(
                cert.read_bytes(), key.read_bytes(), cert_path, key_path, now=now
            )
        elif self_signed_cert:
            if load_council_smime(cert_path, key_path) is not None:
                raise fail(
                    "an S/MIME certificate is installed already: install a new one with --cert"
                )
            address = settings.smtp_from or f"disclosures@{settings.org_id}.invalid"
            pem = self_signed(address, settings.org_id, now=now)
            smime = install_council_smime(*pem, cert_path, key_path, now=now)
        else:
            found = load_council_smime(cert_path, key_path)
            if found is None:
                raise fail(
                    "no S/MIME certificate installed: use --cert and --key (or --self-signed)"
                )
            smime = found
    except OSError as exc:
        raise fail(f"{exc.filename}: {exc.strerror or type(exc).__name__}") from None
    except GatewayError as exc:
        raise fail(exc.message) from None
    shown = {**smime.describe(), "certificate_file": str(cert_path)}
    if json_output:
        print_json(shown)
        return
    typer.echo(f"{shown['subject']}\n{shown['fingerprint']} (until {shown['not_after'][:10]})")
