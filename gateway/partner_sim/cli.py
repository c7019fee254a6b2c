"""`gateway partner-sim`: run one simulated partner as its own process until Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import enum
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from gateway.errors import ConfigurationError
from gateway.logging import configure_logging
from gateway.partner_sim.config import DEFAULT_COUNCIL_JWKS, PartnerConfig, ReceiptMode
from gateway.partner_sim.faults import FaultRates
from gateway.partner_sim.key_pairs import PUBLIC_ENC, PUBLIC_SIG, KeyType
from gateway.partner_sim.mail_server import PartnerMailServer
from gateway.partner_sim.receipt_mailer import ReceiptMailer, ReplyRoute
from gateway.partner_sim.sftp_dropbox import HOST_KEY_FILE, SftpDropBox
from gateway.partner_sim.simulator import PartnerSimulator
from gateway.partner_sim.tls_identity import load_or_create_tls_identity


class SimChannel(enum.StrEnum):
    """How the simulated partner receives."""

    WEBHOOK = "webhook"
    SFTP = "sftp"
    EMAIL = "email"


@dataclass(frozen=True, slots=True)
class SftpFlags:
    """The SFTP partner's own flags (`--channel sftp`)."""

    port: int
    authorized_key: Path
    root: Path


@dataclass(frozen=True, slots=True)
class MailFlags:
    """The email partner's own flags (`--channel email`)."""

    port: int
    reply: ReplyRoute | None  # None: receipts posted to the council's API


def receipts_url(council_jwks: str) -> str:
    """The council's POST /v1/receipts beside its JWKS (same origin)."""
    origin = council_jwks.split("/.well-known/", 1)[0].rstrip("/")
    return f"{origin}/v1/receipts"


def partner_sim_command(  # keyword-only: each parameter is a named option
    *,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="0: any free port")],
    keys: Annotated[Path, typer.Option("--keys", help="Key directory (created on first start)")],
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    partner_id: Annotated[str, typer.Option(help="Our id: the envelopes' aud")] = "partner-sim",
    council_id: Annotated[str, typer.Option(help="The council's id: iss")] = "medway-council",
    council_jwks: Annotated[str, typer.Option(help="URL of the council's JWKS")] = (
        DEFAULT_COUNCIL_JWKS
    ),
    receipts: Annotated[ReceiptMode, typer.Option(help="When to give receipts")] = (
        ReceiptMode.SYNC
    ),
    async_receipt_url: Annotated[
        str | None, typer.Option(help="Where async receipts go (the gateway's /v1/receipts)")
    ] = None,
    key_type: Annotated[
        KeyType | None, typer.Option(help="Encryption key type for new keys [default: ec]")
    ] = None,
    fail_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share answered 503 at once")
    ] = 0.0,
    timeout_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share taken in, then held and answered 504")
    ] = 0.0,
    reject_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share answered with a rejected receipt")
    ] = 0.0,
    no_receipt_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share taken in with no receipt ever")
    ] = 0.0,
    slow_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of answers delayed by --slow-ms")
    ] = 1.0,
    slow_ms: Annotated[int, typer.Option(min=0, help="Delay of a slow answer")] = 0,
    timeout_hold: Annotated[
        float, typer.Option(min=0.0, help="Seconds a timed-out request is held")
    ] = 35.0,
    receipt_delay: Annotated[
        float, typer.Option(min=0.0, help="Async mode: seconds before posting a receipt")
    ] = 0.0,
    seed: Annotated[int | None, typer.Option(help="Seed of the fault RNG (reproducible)")] = None,
    channel: Annotated[
        SimChannel,
        typer.Option(
            help="webhook: POST to --port; sftp: also an SFTP server; email: also an SMTP server"
        ),
    ] = SimChannel.WEBHOOK,
    smtp_port: Annotated[
        int, typer.Option(min=0, max=65535, help="Email: port to listen on (0: any free port)")
    ] = 0,
    receipts_by_mail: Annotated[
        str | None,
        typer.Option(help="Email: mail receipts to this address (the council's receipts mailbox)"),
    ] = None,
    receipts_smtp: Annotated[
        str, typer.Option(help="Email: HOST:PORT of the server mailed receipts go through")
    ] = "localhost:25",
    receipts_smtp_ca: Annotated[
        Path | None, typer.Option(help="Email: CA bundle of that server [default: system CAs]")
    ] = None,
    sftp_port: Annotated[
        int, typer.Option(min=0, max=65535, help="SFTP: port to listen on (0: any free port)")
    ] = 0,
    authorized_key: Annotated[
        Path | None,
        typer.Option(help="SFTP: file with the council's public key (gateway-admin keys sftp)"),
    ] = None,
    sftp_root: Annotated[
        Path | None, typer.Option(help="SFTP: served directory [default: KEYS/sftp]")
    ] = None,
) -> None:
    """Run a simulated partner: opens envelopes, verifies the council, answers with receipts."""
    faults = FaultRates(
        fail_rate=fail_rate,
        timeout_rate=timeout_rate,
        reject_rate=reject_rate,
        no_receipt_rate=no_receipt_rate,
        slow_rate=slow_rate,
        slow_ms=slow_ms,
    )
    if channel is SimChannel.EMAIL and async_receipt_url is None:
        # A mail carries no answer: the receipt goes to the council's API by default.
        async_receipt_url = receipts_url(council_jwks)
    config = PartnerConfig(
        partner_id=partner_id,
        council_id=council_id,
        council_jwks=council_jwks,
        receipts=receipts,
        async_receipt_url=async_receipt_url,
        faults=faults,
        seed=seed,
        keys_dir=keys,
        key_type=key_type,
        timeout_hold_s=timeout_hold,
        receipt_delay_s=receipt_delay,
    )
    sftp: SftpFlags | None = None
    if channel is SimChannel.SFTP:
        if authorized_key is None:
            raise ConfigurationError("--channel sftp needs --authorized-key")
        sftp = SftpFlags(sftp_port, authorized_key, sftp_root or keys / "sftp")
    route = None
    if receipts_by_mail is not None:
        if channel is not SimChannel.EMAIL:
            raise ConfigurationError("--receipts-by-mail needs --channel email")
        if receipts is ReceiptMode.ASYNC:
            raise ConfigurationError("--receipts-by-mail mails receipts: not with --receipts async")
        route = _reply_route(receipts_by_mail, receipts_smtp, receipts_smtp_ca)
    configure_logging()
    smtp = MailFlags(smtp_port, route) if channel is SimChannel.EMAIL else None
    asyncio.run(serve(PartnerSimulator(config), host, port, sftp, smtp))


def _reply_route(address: str, server: str, ca_bundle: Path | None) -> ReplyRoute:
    host, _, port = server.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigurationError("--receipts-smtp must be HOST:PORT")
    if "@" not in address:
        raise ConfigurationError("--receipts-by-mail must be an email address")
    return ReplyRoute(address, host, int(port), ca_bundle)


async def serve(
    simulator: PartnerSimulator,
    host: str,
    port: int,
    sftp: SftpFlags | None = None,
    smtp: MailFlags | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM, then stop cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        url = await simulator.start(host, port)
    except OSError as exc:  # port taken, address not ours: one clear line, not a traceback
        await simulator.stop()
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    keys_dir = simulator.config.keys_dir
    where = f"; public keys: {keys_dir / PUBLIC_ENC}, {keys_dir / PUBLIC_SIG}" if keys_dir else ""
    sys.stdout.write(
        f"partner-sim {simulator.config.partner_id} listening on {url} "
        f"(POST / or /in, GET /ledger, POST /control){where}\n"
    )
    dropbox = None
    if sftp is not None:
        dropbox = await _start_sftp(simulator, host, sftp)
    mail = None
    if smtp is not None:
        mail = await _start_smtp(simulator, host, smtp)
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        if dropbox is not None:
            await dropbox.stop()
        if mail is not None:
            await mail.stop()
        await simulator.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _start_sftp(simulator: PartnerSimulator, host: str, flags: SftpFlags) -> SftpDropBox:
    try:
        line = flags.authorized_key.read_text().strip()
        dropbox = SftpDropBox(
            simulator,
            flags.root,
            authorized_key=line,
            host_key_file=(simulator.config.keys_dir or flags.root) / HOST_KEY_FILE,
        )
        sftp_port = await dropbox.start(host, flags.port)
    except (OSError, ValueError) as exc:
        await simulator.stop()
        raise ConfigurationError(f"cannot serve SFTP: {exc}") from None
    sys.stdout.write(
        f"partner-sim {simulator.config.partner_id} serving SFTP on {host}:{sftp_port} from "
        f"{flags.root}\n  partners.yaml channel: type: sftp, host: {host}, port: {sftp_port}, "
        f"path: /inbound, receipts_path: /outbound\n  host_key: {dropbox.host_key_line}\n"
    )
    return dropbox


async def _start_smtp(
    simulator: PartnerSimulator, host: str, flags: MailFlags
) -> PartnerMailServer:
    config = simulator.config
    try:
        mailer = ReceiptMailer(flags.reply) if flags.reply is not None else None
        identity = load_or_create_tls_identity(config.keys_dir or Path("."), config.partner_id)
        mail = PartnerMailServer(simulator, identity, mailer=mailer)
        smtp_port = await mail.start(host, flags.port)
    except (OSError, ValueError) as exc:
        await simulator.stop()
        raise ConfigurationError(f"cannot serve SMTP: {exc}") from None
    sys.stdout.write(
        f"partner-sim {config.partner_id} receiving mail on {host}:{smtp_port} (STARTTLS "
        f"required)\n  council settings: GATEWAY_SMTP_HOST=localhost GATEWAY_SMTP_PORT={smtp_port}"
        f" GATEWAY_SMTP_CA_BUNDLE={identity.ca_cert}\n"
        + (
            f"  receipts mailed to: {flags.reply.address} via {flags.reply.host}:"
            f"{flags.reply.port}\n"
            if flags.reply is not None
            else f"  receipts posted to: {config.async_receipt_url}\n"
        )
    )
    return mail


def register(app: typer.Typer) -> None:
    """Add `partner-sim` to the `gateway` command."""
    app.command("partner-sim")(partner_sim_command)
